"""Every limit in one place: upstream's fixed ceilings, and the ``Limits`` every layer reads,
built from the settings. Also the one page-bounds check, with upstream's codes."""

from __future__ import annotations

from dataclasses import dataclass

from cmdbgraph.services.errors import CmdbError, ErrorCode, exceeds_limit, parameter_invalid
from cmdbgraph.settings import Settings

# Upstream's own ceilings (BlueKing's API documents them; settings may only lower some).
MAX_BATCH_SIZE = 200  # details per batch_create_instance_association
MAX_CREATE = 200  # instances per createInstances
MAX_DELETE_IDS = 500  # ids per delete_related_inst_asso / deleteInstAssociations
RELATED_PAGE_SIZE = 500  # search_related_inst_asso's page.limit
SEARCH_INST_PAGE_SIZE = 200  # search_inst_by_object's page.limit
MAX_IDEMPOTENCY_KEY = 200  # characters
IMPORT_CHUNK = 200  # rows per call when importing into a running server (upstream's maximum)
# Rows per transaction when importing into the local database: decided in order, as
# consecutive batches of IMPORT_CHUNK would be, but committed together.
IMPORT_TRANSACTION = 5_000


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may ask for."""

    max_batch_size: int = MAX_BATCH_SIZE
    max_create: int = MAX_CREATE
    max_delete_ids: int = MAX_DELETE_IDS
    default_page_size: int = 50
    max_page_size: int = 500
    default_nested_page_size: int = 10
    max_nested_page_size: int = 200
    related_page_size: int = RELATED_PAGE_SIZE
    search_inst_page_size: int = SEARCH_INST_PAGE_SIZE
    max_idempotency_key: int = MAX_IDEMPOTENCY_KEY
    max_filter_length: int = 1_000
    topology_max_depth: int = 6
    topology_max_nodes: int = 1_000
    topology_default_nodes: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_batch_size=settings.max_batch_size,
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
            default_nested_page_size=settings.default_nested_page_size,
            max_nested_page_size=settings.max_nested_page_size,
            max_filter_length=settings.max_filter_length,
            topology_max_depth=settings.topology_max_depth,
            topology_max_nodes=settings.topology_max_nodes,
            topology_default_nodes=settings.topology_default_nodes,
        )


def page_bounds(
    start: int,
    limit: int | None,
    *,
    default: int,
    maximum: int,
    start_name: str,
    limit_name: str | None = None,
) -> tuple[int, int]:
    """``(start, limit)`` checked: a negative start answers 1199011 naming ``start_name``;
    no limit means ``default``. With ``limit_name`` (GraphQL's arguments) a limit below 1
    answers 1199011 and one over ``maximum`` 1199035 naming both; without it (upstream's REST
    pages) either answers upstream's 1199059, whose text suggests 200."""
    if start < 0:
        raise parameter_invalid(start_name)
    if limit is None:
        limit = default
    if limit_name is not None:
        if limit < 1:
            raise parameter_invalid(limit_name)
        if limit > maximum:
            raise exceeds_limit(limit_name, maximum)
    elif limit < 1 or limit > maximum:
        raise CmdbError(ErrorCode.PAGE_LIMIT_EXCEEDED)
    return start, limit


def sort_keys(text: str) -> list[tuple[str, bool]]:
    """Upstream's ``page.sort`` (``a,-b`` or ``a:1,b:-1``) as (field, descending) pairs, read
    as its storage layer reads it (``Find.Sort``)."""
    keys = []
    for item in text.split(",") if text else ():
        parts = item.strip().split(":")
        name = parts[0].lstrip("+-")
        descending = parts[1].strip() == "-1" if len(parts) == 2 else parts[0].startswith("-")
        keys.append((name, descending))
    return keys
