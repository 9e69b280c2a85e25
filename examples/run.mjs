// Runs the examples of this folder against a cmdbgraph server, the way a front-end does:
// queries and the mutation over HTTP with graphql-request, the subscription over a websocket
// with graphql-ws. It pages through the association list by cursor, watches association events,
// creates an association with the batch mutation, receives that creation's event, reads the
// source instance's neighbourhood and its topology two associations deep, and refetches the new
// association by its nodeId. It prints a JSON summary on stdout and exits 0, or prints what
// failed on stderr and exits 1.
//
//   npm install                      # once, in this folder
//   node run.mjs [URL] [--pair SOURCE:TARGET] [--page-size N]
//
// URL: the server, http://127.0.0.1:8000 by default. --pair: the switch and the host to
// associate (bk_switch_belong_host, 14:23 by default; a pair that already exists fails: pass
// another one). --page-size: the association list's page size (2 by default, to show paging).
// Credentials: the demo app's, or the X-Bkapi-Authorization header's JSON in the environment
// variable BKAPI_AUTHORIZATION.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ClientError, GraphQLClient } from 'graphql-request';
import { createClient } from 'graphql-ws';
// Node.js before 22 has no global WebSocket; ws works on every version graphql-ws supports.
import WebSocket from 'ws';

const MODEL_ASSOCIATION = {
  bkObjId: 'bk_switch',
  bkAsstObjId: 'host',
  bkObjAsstId: 'bk_switch_belong_host',
};
const DEMO_CREDENTIALS = { bk_app_code: 'esb_test', bk_app_secret: 'xxx', bk_username: 'admin' };
const EVENT_TIMEOUT_MS = 15_000;
const RUN_TIMEOUT_MS = 60_000;

class Failure extends Error {}

function example(name) {
  return readFileSync(new URL(`./${name}.graphql`, import.meta.url), 'utf8');
}

const ASSOCIATIONS = example('associations');
const NEIGHBOURHOOD = example('neighbourhood');
const BATCH_CREATE = example('batch-create');
const REFETCH = example('refetch');
const WATCH = example('watch');
const TOPOLOGY = example('topology');

function options() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      pair: { type: 'string', default: '14:23' },
      'page-size': { type: 'string', default: '2' },
    },
  });
  if (positionals.length > 1) throw new Failure(`one URL expected, got: ${positionals.join(' ')}`);
  const base = (positionals[0] ?? 'http://127.0.0.1:8000')
    .replace(/\/+$/, '')
    .replace(/\/graphql$/, '');
  if (!/^https?:\/\/[^/]+/.test(base)) throw new Failure(`not an http(s) URL: ${positionals[0]}`);
  const pair = /^(\d+):(\d+)$/.exec(values.pair);
  if (!pair) {
    throw new Failure(`--pair takes SOURCE:TARGET instance ids, e.g. 14:23, not ${values.pair}`);
  }
  const pageSize = Number(values['page-size']);
  if (!Number.isInteger(pageSize) || pageSize < 1) {
    throw new Failure(`--page-size takes a positive integer, not ${values['page-size']}`);
  }
  let credentials = DEMO_CREDENTIALS;
  if (process.env.BKAPI_AUTHORIZATION) {
    try {
      credentials = JSON.parse(process.env.BKAPI_AUTHORIZATION);
    } catch {
      throw new Failure('BKAPI_AUTHORIZATION must hold the X-Bkapi-Authorization header\'s JSON');
    }
  }
  return {
    httpUrl: `${base}/graphql`,
    wsUrl: `${base.replace(/^http/, 'ws')}/graphql`,
    source: Number(pair[1]),
    target: Number(pair[2]),
    pageSize,
    credentials,
  };
}

/** The events of one subscription, and a way to wait for the one that matches. */
class Watch {
  constructor(client, url, variables) {
    this.events = [];
    this.waiters = [];
    this.failure = null;
    this.unsubscribe = client.subscribe(
      { query: WATCH, variables },
      {
        next: (result) => {
          if (result.errors) {
            this.fail(`the subscription at ${url} answered errors: ${describe(result.errors)}`);
            return;
          }
          this.events.push(result.data.instAssociationEvents);
          this.settle();
        },
        error: (error) => this.fail(`the subscription at ${url} failed: ${describe(error)}`),
        complete: () => this.fail(`the server completed the subscription at ${url}`),
      },
    );
  }

  fail(message) {
    this.failure ??= new Failure(message);
    this.settle();
  }

  settle() {
    this.waiters = this.waiters.filter((waiter) => !waiter());
  }

  /** The first event for which `matches` is true, received or to come. */
  next(matches, what) {
    return this.until(() => this.events.find(matches), `the event of ${what}`);
  }

  /** What `check` answers once it answers something, unless the subscription fails first. */
  until(check, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((other) => other !== waiter);
        reject(new Failure(`${what} did not come within ${EVENT_TIMEOUT_MS / 1000} s`));
      }, EVENT_TIMEOUT_MS);
      const waiter = () => {
        const found = check();
        if (!found && !this.failure) return false;
        clearTimeout(timer);
        if (found) resolve(found);
        else reject(this.failure);
        return true;
      };
      this.waiters.push(waiter);
      this.settle();
    });
  }
}

function describe(error) {
  if (Array.isArray(error)) return error.map((e) => e.message ?? JSON.stringify(e)).join('; ');
  if (error && typeof error.code === 'number' && 'reason' in error) {
    return `websocket closed ${error.code} ${error.reason || ''}`.trim();
  }
  if (error instanceof ClientError) {
    const errors = error.response.errors ?? [];
    const codes = errors.map((e) => `${e.message} (${e.extensions?.code ?? 'no code'})`);
    return `HTTP ${error.response.status}: ${codes.join('; ') || JSON.stringify(error.response)}`;
  }
  if (error instanceof Error) {
    const cause = error.cause ? `: ${error.cause.message ?? error.cause}` : '';
    return `${error.message}${cause}`;
  }
  // The websocket's error event (the server could not be reached, say).
  if (error?.message || error?.error?.message) return error.message || error.error.message;
  return JSON.stringify(error) ?? String(error);
}

/** A function running one operation over HTTP; it throws a Failure saying what failed. */
function httpClient(url, headers) {
  const client = new GraphQLClient(url, { headers });
  return async (document, variables, what) => {
    try {
      return await client.request(document, variables);
    } catch (error) {
      throw new Failure(`${what} failed (POST ${url}): ${describe(error)}`);
    }
  };
}

/** Every association of the model association, a page at a time, following endCursor. */
async function pageThrough(request, pageSize) {
  const ids = [];
  let after = null;
  let pages = 0;
  let totalCount = null;
  for (;;) {
    const { instAssociationsConnection: page } = await request(
      ASSOCIATIONS,
      { first: pageSize, after, filter: { bkObjAsstId: MODEL_ASSOCIATION.bkObjAsstId } },
      `reading page ${pages + 1} of the associations`,
    );
    pages += 1;
    totalCount ??= page.totalCount;
    ids.push(...page.edges.map((edge) => edge.node.id));
    if (!page.pageInfo.hasNextPage) break;
    after = page.pageInfo.endCursor;
  }
  return { pageSize, pages, totalCount, ids };
}

async function createAssociation(request, source, target) {
  const input = { ...MODEL_ASSOCIATION, details: [{ bkInstId: source, bkAsstInstId: target }] };
  const { batchCreateInstAssociations: result } = await request(
    BATCH_CREATE,
    { input },
    'the batch create',
  );
  if (result.__typename !== 'BatchCreateInstAssociationsPayload') {
    const { __typename, code, bkErrorCode, message } = result;
    throw new Failure(`batch create refused: ${__typename} ${code} (${bkErrorCode}): ${message}`);
  }
  const [item] = result.results;
  if (!item.ok) {
    const { code, bkErrorCode, message } = item.error;
    throw new Failure(
      `the batch create of ${source} -> ${target} failed: ${code} (${bkErrorCode}) ${message}` +
        (code === 'ASSOCIATION_ALREADY_EXISTS' ? '; pass another with --pair SOURCE:TARGET' : ''),
    );
  }
  return item.association;
}

function neighbours(instance) {
  const edges = (connection) => connection.edges.map((edge) => edge.node);
  return {
    bkInstId: instance.bkInstId,
    bkObjId: instance.bkObjId,
    bkInstName: instance.bkInstName,
    asSource: edges(instance.associationsAsSourceConnection).map((a) => ({
      id: a.id,
      bkObjAsstId: a.bkObjAsstId,
      target: a.target && { bkInstId: a.target.bkInstId, bkInstName: a.target.bkInstName },
    })),
    asTarget: edges(instance.associationsAsTargetConnection).map((a) => ({
      id: a.id,
      bkObjAsstId: a.bkObjAsstId,
      source: a.source && { bkInstId: a.source.bkInstId, bkInstName: a.source.bkInstName },
    })),
    hasMore:
      instance.associationsAsSourceConnection.pageInfo.hasNextPage ||
      instance.associationsAsTargetConnection.pageInfo.hasNextPage,
  };
}

async function run(settings) {
  const authorization = JSON.stringify(settings.credentials);
  const request = httpClient(settings.httpUrl, { 'X-Bkapi-Authorization': authorization });

  let watch = null;
  let acknowledged = false;
  const ws = createClient({
    url: settings.wsUrl,
    webSocketImpl: WebSocket,
    // The credentials, as the headers of an HTTP request would carry them.
    connectionParams: { 'X-Bkapi-Authorization': settings.credentials },
    retryAttempts: 0,
    on: {
      connected: () => {
        acknowledged = true;
        watch?.settle();
      },
    },
  });
  try {
    // Watch first, from now: the creation below must come after the subscription started.
    const variables = { after: null, bkObjAsstId: MODEL_ASSOCIATION.bkObjAsstId };
    watch = new Watch(ws, settings.wsUrl, variables);
    await watch.until(() => acknowledged, 'the connection acknowledgement');

    const associations = await pageThrough(request, settings.pageSize);

    // The subscription starts once the server has handled the subscribe message, which has no
    // reply of its own: the reads above and this pause leave it the time to.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const created = await createAssociation(request, settings.source, settings.target);
    const event = await watch.next(
      (e) => e.eventType === 'CREATE' && e.association.id === created.id,
      `the creation of association ${created.id}`,
    );
    watch.unsubscribe();

    const { instance } = await request(
      NEIGHBOURHOOD,
      { bkInstId: settings.source, first: 20 },
      `reading instance ${settings.source}`,
    );
    if (!instance) throw new Failure(`instance ${settings.source} not found`);

    const { instance: topology } = await request(
      TOPOLOGY,
      { bkInstId: settings.source, depth: 2, direction: 'BOTH', maxNodes: 100 },
      `reading the topology of instance ${settings.source}`,
    );

    const { node } = await request(REFETCH, { nodeId: created.nodeId }, 'the refetch');
    if (!node || node.__typename !== 'InstAssociation' || node.id !== created.id) {
      throw new Failure(`the refetch of ${created.nodeId} answered ${JSON.stringify(node)}`);
    }

    return {
      server: settings.httpUrl,
      associations,
      created: {
        id: created.id,
        nodeId: created.nodeId,
        bkObjAsstId: created.bkObjAsstId,
        bkInstId: created.bkInstId,
        bkAsstInstId: created.bkAsstInstId,
      },
      event: {
        eventType: event.eventType,
        cursor: event.cursor,
        associationId: event.association.id,
        source: event.association.source?.bkInstName ?? null,
        target: event.association.target?.bkInstName ?? null,
      },
      eventsReceived: watch.events.length,
      neighbourhood: neighbours(instance),
      topology: {
        truncated: topology.topology.truncated,
        nodes: topology.topology.nodes.map((n) => ({
          bkInstId: n.instance.bkInstId,
          bkInstName: n.instance.bkInstName,
          depth: n.depth,
        })),
        associations: topology.topology.edges.map((e) => e.association.id),
      },
      refetched: {
        __typename: node.__typename,
        nodeId: node.nodeId,
        id: node.id,
        bkInstId: node.bkInstId,
        bkAsstInstId: node.bkAsstInstId,
      },
    };
  } finally {
    await ws.dispose();
  }
}

function finish(code, text, stream) {
  stream.write(`${text}\n`, () => process.exit(code));
}

try {
  const settings = options();
  const deadline = setTimeout(() => {
    finish(1, `run.mjs: no result within ${RUN_TIMEOUT_MS / 1000} s`, process.stderr);
  }, RUN_TIMEOUT_MS);
  const summary = await run(settings);
  clearTimeout(deadline);
  finish(0, JSON.stringify(summary, null, 2), process.stdout);
} catch (error) {
  const message = error instanceof Failure ? error.message : describe(error);
  finish(1, `run.mjs: ${message}`, process.stderr);
}
