"""Records as upstream's JSON objects."""

from __future__ import annotations

from cmdbgraph.services.records import Instance, InstAssociation, Model, ModelAssociation


def association(a: InstAssociation) -> dict:
    return {
        "id": a.id,
        "bk_obj_asst_id": a.bk_obj_asst_id,
        "bk_asst_id": a.bk_asst_id,
        "bk_obj_id": a.bk_obj_id,
        "bk_inst_id": a.bk_inst_id,
        "bk_asst_obj_id": a.bk_asst_obj_id,
        "bk_asst_inst_id": a.bk_asst_inst_id,
        "bk_supplier_account": a.bk_supplier_account,
        "bk_biz_id": a.bk_biz_id,
    }


def model_association(m: ModelAssociation) -> dict:
    return {
        "id": m.id,
        "bk_obj_asst_id": m.bk_obj_asst_id,
        "bk_obj_asst_name": m.bk_obj_asst_name,
        "bk_obj_id": m.bk_obj_id,
        "bk_asst_obj_id": m.bk_asst_obj_id,
        "bk_asst_id": m.bk_asst_id,
        "mapping": m.mapping,
        "on_delete": m.on_delete,
        "ispre": m.ispre,
        "bk_supplier_account": m.bk_supplier_account,
    }


def model(m: Model) -> dict:
    return {
        "bk_obj_id": m.bk_obj_id,
        "bk_obj_name": m.bk_obj_name,
        "bk_classification_id": m.bk_classification_id,
        "bk_obj_icon": m.bk_obj_icon,
        "ispre": m.ispre,
        "bk_ispaused": m.bk_ispaused,
        "bk_supplier_account": m.bk_supplier_account,
        "creator": m.creator,
        "modifier": m.modifier,
        "create_time": m.create_time.isoformat(),
        "last_time": m.last_time.isoformat(),
    }


def instance(i: Instance) -> dict:
    return {
        **i.attributes,
        "bk_inst_id": i.bk_inst_id,
        "bk_obj_id": i.bk_obj_id,
        "bk_inst_name": i.bk_inst_name,
        "bk_supplier_account": i.bk_supplier_account,
        "create_time": i.create_time.isoformat(),
        "last_time": i.last_time.isoformat(),
    }


def only(fields: list[str], item: dict) -> dict:
    """Upstream's ``fields``: keep only these keys (all of them when empty)."""
    return {name: item[name] for name in fields if name in item} if fields else item
