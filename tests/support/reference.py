"""Upstream's batch create, one item at a time, in the simplest form: the model the service is
checked against (tests/test_reference_model.py, and the serial orders of
tests/test_concurrency.py).

``Reference.batch_create`` walks the details as BlueKing CMDB does (behaviour spec, section 3):
every accepted item is stored before the next one is checked, and each item gets the first
failure of: duplicate, source missing, target missing, 1:1, 1:n.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.upstream import (
    DUPLICATE,
    ONE_TO_MANY,
    ONE_TO_ONE,
    SOURCE_MISSING,
    TARGET_MISSING,
    item_error,
)


@dataclass(frozen=True)
class ModelAsst:
    bk_obj_asst_id: str
    bk_obj_id: str
    bk_asst_obj_id: str
    mapping: str


@dataclass
class Reference:
    """Stored instances ``{id: bk_obj_id}`` and stored associations, and upstream's loop."""

    instances: dict[int, str]
    model_associations: dict[str, ModelAsst]
    associations: list[tuple[str, int, int]] = field(default_factory=list)

    def batch_create(
        self,
        bk_obj_asst_id: str,
        details: list[tuple[int, int]],
        *,
        dry_run: bool = False,
        all_or_nothing: bool = False,
    ) -> tuple[list[int | None], bool]:
        """Per index the error code or None (passed); and whether the passed items are written.

        Upstream writes each item before checking the next; a dry run or an all-or-nothing
        batch with a failure decides the same way on a scratch copy and keeps nothing.
        """
        asst = self.model_associations[bk_obj_asst_id]
        stored = list(self.associations)
        outcomes: list[int | None] = []
        for src, dest in details:
            if (bk_obj_asst_id, src, dest) in stored:
                outcomes.append(DUPLICATE.code)
            elif self.instances.get(src) != asst.bk_obj_id:
                outcomes.append(SOURCE_MISSING.code)
            elif self.instances.get(dest) != asst.bk_asst_obj_id:
                outcomes.append(TARGET_MISSING.code)
            elif asst.mapping == "1:1" and any(
                a == bk_obj_asst_id and (s == src or d == dest) for a, s, d in stored
            ):
                outcomes.append(ONE_TO_ONE.code)
            elif asst.mapping == "1:n" and any(
                a == bk_obj_asst_id and d == dest for a, _, d in stored
            ):
                outcomes.append(ONE_TO_MANY.code)
            else:
                outcomes.append(None)
                stored.append((bk_obj_asst_id, src, dest))
        written = not dry_run and (not all_or_nothing or all(o is None for o in outcomes))
        if written:
            self.associations = stored
        return outcomes, written


def expected_messages(outcomes: list[int | None], asst: ModelAsst, language: str) -> dict[str, str]:
    """Upstream's ``error_msg`` for ``outcomes`` (as ``Reference.batch_create`` gives them)."""
    return {
        str(index): item_error(code, asst.bk_obj_id, asst.bk_asst_obj_id).text(language)
        for index, code in enumerate(outcomes)
        if code is not None
    }
