# syntax=docker/dockerfile:1
# cmdbgraph: the same install steps as the README's "Install" section, in a slim image.

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cmdbgraph ./cmdbgraph
# README, "Install": python3 -m venv .venv && .venv/bin/pip install .
RUN python3 -m venv /opt/cmdbgraph \
    && /opt/cmdbgraph/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/cmdbgraph/bin/pip install --no-cache-dir .

FROM python:3.11.11-slim-bookworm
ENV PATH="/opt/cmdbgraph/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    CMDBGRAPH_HOST=0.0.0.0 \
    CMDBGRAPH_PORT=8000 \
    CMDBGRAPH_DATABASE_URL=sqlite+aiosqlite:////data/cmdbgraph.sqlite3
RUN groupadd --system cmdbgraph \
    && useradd --system --gid cmdbgraph --home-dir /data --no-create-home cmdbgraph \
    && mkdir -p /data && chown cmdbgraph:cmdbgraph /data
COPY --from=build /opt/cmdbgraph /opt/cmdbgraph
COPY docker/entrypoint.sh /usr/local/bin/cmdbgraph-entrypoint
USER cmdbgraph
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CMDBGRAPH_PORT', '8000') + '/healthz', timeout=2)"]
ENTRYPOINT ["/usr/local/bin/cmdbgraph-entrypoint"]
CMD ["--workers", "2"]
