// The topology page (GET /topology, cmdbgraph/http/topology_page.py): find an instance by
// name, draw its neighbourhood with Cytoscape.js (the global `cytoscape`, vendored beside this
// file), expand a node by clicking it. A plain script edited by hand: no build step. It posts
// to the GraphQL endpoint beside the page with the credentials box's value as the
// X-Bkapi-Authorization header; nothing is kept in the browser's storage. Whatever goes wrong
// is shown in the page (#error). The Cytoscape instance is `window.topology`.
(() => {
  "use strict";

  const GRAPHQL_URL = new URL("graphql", window.location.href).href;
  const CREDENTIALS_HEADER = "X-Bkapi-Authorization";
  const SEARCH_SIZE = 20;
  // Instances (and associations) a topology answers at most: the server's default cap. A reply
  // that holds as many was cut short; one with fewer but `truncated` has more beyond its depth.
  const MAX_NODES = 200;
  // Colours for models, handed out in the order of the `models` list (then as met).
  const PALETTE = [
    "#2f80ed",
    "#27ae60",
    "#eb5757",
    "#f2994a",
    "#9b51e0",
    "#00a3a3",
    "#d4a106",
    "#e056a0",
    "#6d8299",
    "#8d6e63",
  ];

  const SEARCH = `query TopologySearch($name: String!, $first: Int!) {
  instancesConnection(nameContains: $name, first: $first) {
    edges { node { bkInstId bkObjId bkInstName } }
  }
}`;
  const MODELS = "query TopologyModels { models { bkObjId bkObjName } }";
  const NEIGHBOURHOOD = `query TopologyNeighbourhood(
  $bkInstId: BigInt!, $depth: Int!, $maxNodes: Int!
) {
  instance(bkInstId: $bkInstId) {
    bkInstId bkObjId bkInstName
    topology(depth: $depth, maxNodes: $maxNodes) {
      nodes { depth instance { bkInstId bkObjId bkInstName } }
      edges { association { id bkInstId bkAsstInstId bkAsstId bkObjAsstId } }
      truncated
    }
  }
}`;

  const $ = (id) => document.getElementById(id);
  const searchForm = $("search");
  const nameInput = $("name");
  const results = $("results");
  const depthSelect = $("depth");
  const resetButton = $("reset");
  const legend = $("legend");
  const credentials = $("credentials");
  const errorBox = $("error");
  const statusLine = $("status");
  const container = $("graph");

  // A failure to show as it is (the others are shown with their type).
  class PageError extends Error {}

  const state = {
    root: null, // the instance picked: {bkInstId, bkObjId, bkInstName}
    generation: 0, // bumped by every redraw: older answers are dropped
    capped: false, // a reply held MAX_NODES: some instances or associations are not drawn
    beyond: false, // the last reply had more beyond its depth
    models: null, // bkObjId -> bkObjName, once read
    colours: new Map(), // bkObjId -> colour
  };

  const cy = cytoscape({
    container,
    elements: [],
    minZoom: 0.2,
    maxZoom: 3,
    style: [
      {
        selector: "node",
        style: {
          "background-color": "data(colour)",
          label: "data(label)",
          "font-size": 12,
          color: "#1f2933",
          "text-valign": "bottom",
          "text-margin-y": 4,
          "text-background-color": "#ffffff",
          "text-background-opacity": 0.8,
          "text-background-padding": 1,
          width: 30,
          height: 30,
          "border-width": 2,
          "border-style": "dashed",
          "border-color": "#52606d",
        },
      },
      { selector: "node.expanded", style: { "border-style": "solid" } },
      {
        selector: "node.root",
        style: { width: 40, height: 40, "border-width": 4, "border-color": "#102a43" },
      },
      {
        selector: "edge",
        style: {
          width: 2,
          "curve-style": "bezier",
          "line-color": "#9fb3c8",
          "target-arrow-shape": "triangle",
          "target-arrow-color": "#9fb3c8",
          label: "data(label)",
          "font-size": 10,
          color: "#486581",
          "text-rotation": "autorotate",
          "text-background-color": "#ffffff",
          "text-background-opacity": 1,
          "text-background-padding": 2,
        },
      },
    ],
  });
  window.topology = cy;

  // ---------------------------------------------------------------------------------------
  // Talking to the server

  // The headers the credentials box asks for: its JSON value, an object sent as its JSON text
  // (as GraphiQL sends it), a string as it is; nothing when it is empty.
  const credentialHeaders = () => {
    const text = credentials.value.trim();
    if (text === "") return {};
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new PageError(
        `The credentials are not JSON (${error.message}). Write them as an object, e.g. ` +
          '{"bk_app_code": "...", "bk_app_secret": "...", "bk_username": "..."}.',
      );
    }
    return { [CREDENTIALS_HEADER]: typeof value === "string" ? value : JSON.stringify(value) };
  };

  const describeError = (error) => {
    const extensions = error.extensions || {};
    const code = [extensions.code, extensions.bkErrorCode].filter((part) => part).join(" ");
    return [error.message, code && `(${code})`, extensions.hint].filter((part) => part).join(" ");
  };

  const graphql = async (query, variables) => {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json",
      ...credentialHeaders(),
    };
    let response;
    try {
      response = await fetch(GRAPHQL_URL, {
        method: "POST",
        headers,
        body: JSON.stringify({ query, variables }),
        credentials: "same-origin",
      });
    } catch (error) {
      throw new PageError(`The server could not be reached: ${error.message}`);
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new PageError(`The server answered ${response.status} without a GraphQL reply.`);
    }
    if (Array.isArray(body.errors) && body.errors.length > 0) {
      throw new PageError(body.errors.map(describeError).join("\n"));
    }
    if (!response.ok || !body.data) {
      throw new PageError(`The server answered ${response.status} without data.`);
    }
    return body.data;
  };

  const readModels = async () => {
    if (state.models === null) {
      const data = await graphql(MODELS, {});
      state.models = new Map(data.models.map((model) => [model.bkObjId, model.bkObjName]));
      for (const model of data.models) colourOf(model.bkObjId);
    }
    return state.models;
  };

  // ---------------------------------------------------------------------------------------
  // What the page shows

  // The error box takes room from the graph: Cytoscape.js is told its container's new size.
  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = false;
    cy.resize();
  };
  const clearError = () => {
    if (errorBox.hidden) return;
    errorBox.textContent = "";
    errorBox.hidden = true;
    cy.resize();
  };
  const setStatus = (message) => {
    statusLine.textContent = message;
  };

  // Runs an action of the user's, one at a time; what it throws is shown in the page.
  let busy = Promise.resolve();
  const run = (action) => {
    busy = busy.then(async () => {
      clearError();
      document.body.setAttribute("aria-busy", "true");
      try {
        await action();
      } catch (error) {
        setStatus("");
        showError(
          error instanceof PageError ? error.message : `Unexpected error: ${error && error.stack}`,
        );
      } finally {
        document.body.removeAttribute("aria-busy");
      }
    });
    return busy;
  };

  const colourOf = (model) => {
    if (!state.colours.has(model)) {
      state.colours.set(model, PALETTE[state.colours.size % PALETTE.length]);
    }
    return state.colours.get(model);
  };

  const modelName = (model) => {
    const name = state.models && state.models.get(model);
    return name && name !== model ? `${name} (${model})` : model;
  };

  const element = (tag, text, className) => {
    const made = document.createElement(tag);
    if (text !== undefined) made.textContent = text;
    if (className) made.className = className;
    return made;
  };

  const drawLegend = () => {
    legend.replaceChildren();
    if (cy.nodes().empty()) return;
    const counts = (collection, key) => {
      const counted = new Map();
      collection.forEach((item) => {
        const value = item.data(key);
        counted.set(value, (counted.get(value) || 0) + 1);
      });
      return [...counted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    };
    legend.append(element("h2", "Models"));
    const models = element("ul");
    models.id = "legend-models";
    for (const [model, count] of counts(cy.nodes(), "model")) {
      const item = element("li");
      item.dataset.model = model;
      const swatch = element("span", undefined, "swatch");
      swatch.style.backgroundColor = colourOf(model); // the CSSOM, which the policy allows
      item.append(swatch, element("span", `${modelName(model)}: ${count}`));
      models.append(item);
    }
    legend.append(models);
    if (cy.edges().nonempty()) {
      legend.append(element("h2", "Associations (edge labels)"));
      const kinds = element("ul");
      kinds.id = "legend-kinds";
      for (const [kind, count] of counts(cy.edges(), "label")) {
        const item = element("li", `${kind}: ${count}`);
        item.dataset.kind = kind;
        kinds.append(item);
      }
      legend.append(kinds);
    }
  };

  const describeGraph = (prefix) => {
    const nodes = cy.nodes().length;
    const edges = cy.edges().length;
    let more = "";
    if (state.capped) {
      more = ` A reply held the most the page asks for (${MAX_NODES}): some are not drawn.`;
    } else if (state.beyond) {
      more = " More lies further: click a dashed instance to expand it.";
    }
    setStatus(
      `${prefix}: ${nodes} instance${nodes === 1 ? "" : "s"}, ` +
        `${edges} association${edges === 1 ? "" : "s"}.${more}`,
    );
  };

  const nodeId = (bkInstId) => `i${bkInstId}`;

  // Whether a reply was cut short by MAX_NODES (not only by its depth).
  const capped = (topology) =>
    topology.nodes.length >= MAX_NODES || topology.edges.length >= MAX_NODES;

  // Adds what ``topology`` holds that the graph does not; ``baseDepth`` is the depth of the
  // instance it was read from. Answers how many instances and associations were new.
  const merge = (topology, baseDepth) => {
    const nodes = [];
    for (const { depth, instance } of topology.nodes) {
      const id = nodeId(instance.bkInstId);
      const existing = cy.getElementById(id);
      if (existing.nonempty()) {
        if (baseDepth + depth < existing.data("depth")) existing.data("depth", baseDepth + depth);
        continue;
      }
      nodes.push({
        group: "nodes",
        data: {
          id,
          bkInstId: instance.bkInstId,
          model: instance.bkObjId,
          label: instance.bkInstName,
          colour: colourOf(instance.bkObjId),
          depth: baseDepth + depth,
        },
      });
    }
    cy.add(nodes);
    const edges = [];
    for (const { association } of topology.edges) {
      const id = `a${association.id}`;
      const source = nodeId(association.bkInstId);
      const target = nodeId(association.bkAsstInstId);
      if (cy.getElementById(id).nonempty()) continue;
      if (cy.getElementById(source).empty() || cy.getElementById(target).empty()) continue;
      edges.push({
        group: "edges",
        data: {
          id,
          source,
          target,
          label: association.bkAsstId,
          bkObjAsstId: association.bkObjAsstId,
        },
      });
    }
    cy.add(edges);
    state.capped = state.capped || capped(topology);
    state.beyond = topology.truncated && !capped(topology);
    return { nodes: nodes.length, edges: edges.length };
  };

  // The picked instance on top, then a row per distance; a small graph is not blown up.
  const layout = () => {
    cy.layout({
      name: "breadthfirst",
      roots: cy.getElementById(nodeId(state.root.bkInstId)),
      directed: false,
      spacingFactor: 1.6,
      padding: 40,
      animate: false,
    }).run();
    if (cy.zoom() > 1.25) {
      cy.zoom(1.25);
      cy.center();
    }
  };

  const neighbourhood = async (bkInstId, depth) => {
    const data = await graphql(NEIGHBOURHOOD, { bkInstId, depth, maxNodes: MAX_NODES });
    if (!data.instance) throw new PageError(`There is no instance ${bkInstId} (any more).`);
    return data.instance;
  };

  // ---------------------------------------------------------------------------------------
  // The user's actions

  const search = async () => {
    const name = nameInput.value.trim();
    results.replaceChildren();
    if (name === "") throw new PageError("Type part of an instance's name, then search.");
    setStatus(`Searching for “${name}”…`);
    const data = await graphql(SEARCH, { name, first: SEARCH_SIZE });
    const found = data.instancesConnection.edges.map((edge) => edge.node);
    if (found.length === 0) {
      throw new PageError(`No instance's name contains “${name}”.`);
    }
    await readModels();
    for (const instance of found) {
      const button = element("button");
      button.type = "button";
      button.dataset.bkInstId = String(instance.bkInstId);
      button.setAttribute("aria-pressed", "false");
      button.append(
        element("span", instance.bkInstName),
        " ",
        element("small", `${modelName(instance.bkObjId)}, ${instance.bkInstId}`),
      );
      button.addEventListener("click", () => {
        for (const other of results.querySelectorAll("button")) {
          other.setAttribute("aria-pressed", String(other === button));
        }
        run(() => draw(instance));
      });
      const item = element("li");
      item.append(button);
      results.append(item);
    }
    const more = found.length === SEARCH_SIZE ? ` (the first ${SEARCH_SIZE})` : "";
    setStatus(
      `${found.length} instance${found.length === 1 ? "" : "s"} found${more}: pick one to draw.`,
    );
  };

  // The picked instance's neighbourhood at the depth chosen, from scratch.
  const draw = async (instance) => {
    const generation = ++state.generation;
    const depth = Number(depthSelect.value);
    setStatus(`Reading the neighbourhood of ${instance.bkInstName}…`);
    await readModels();
    const root = await neighbourhood(instance.bkInstId, depth);
    if (generation !== state.generation) return;
    state.root = root;
    state.capped = false;
    cy.elements().remove();
    merge(root.topology, 0);
    // Every instance nearer than the depth has all its associations drawn (unless cut short).
    if (!capped(root.topology)) {
      cy.nodes().filter((node) => node.data("depth") < depth).addClass("expanded");
    }
    cy.getElementById(nodeId(root.bkInstId)).addClass("root expanded");
    layout();
    drawLegend();
    resetButton.disabled = false;
    describeGraph(`${root.bkInstName} at depth ${depth}`);
  };

  // One association further from ``node``, added to what is drawn.
  const expand = async (node) => {
    const generation = state.generation;
    const label = node.data("label");
    setStatus(`Expanding ${label}…`);
    const read = await neighbourhood(node.data("bkInstId"), 1);
    if (generation !== state.generation || node.removed()) return;
    const added = merge(read.topology, node.data("depth"));
    if (!capped(read.topology)) node.addClass("expanded");
    layout();
    drawLegend();
    describeGraph(
      `Expanded ${label} (${added.nodes} new instance${added.nodes === 1 ? "" : "s"}, ` +
        `${added.edges} new association${added.edges === 1 ? "" : "s"})`,
    );
  };

  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    run(search);
  });
  depthSelect.addEventListener("change", () => {
    if (state.root) run(() => draw(state.root));
  });
  resetButton.addEventListener("click", () => {
    if (state.root) run(() => draw(state.root));
  });
  cy.on("tap", "node", (event) => {
    run(() => expand(event.target));
  });
  cy.on("mouseover", "node", () => container.classList.add("clickable"));
  cy.on("mouseout", "node", () => container.classList.remove("clickable"));
})();
