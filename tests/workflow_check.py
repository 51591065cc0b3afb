"""Read UI-format workflows (what users drag in) against a host's /object_info.

``ui_problems`` lists what would load wrongly: unknown node types, widget values that do not
line up with the node's widgets, links whose type or slot does not fit. ``ui_to_api`` turns a UI
workflow into the API prompt the frontend would queue (widgets by name, links as [node, slot]),
so a template can be compared with the API twin the host tests run.
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def _spec(info: dict, name: str) -> tuple[Any, dict]:
    for part in ("required", "optional"):
        if name in info["input"].get(part, {}):
            entry = info["input"][part][name]
            return entry[0], (entry[1] if len(entry) > 1 else {})
    raise KeyError(name)


def widget_slots(info: dict) -> list[str | None]:
    """The node's widget values in order: input names, None for the extra values the frontend
    stores after some widgets (an upload button, an audio player, control_after_generate)."""
    slots: list[str | None] = []
    order = info["input_order"]
    for name in order.get("required", []) + order.get("optional", []):
        kind, options = _spec(info, name)
        if not (isinstance(kind, list) or kind in WIDGET_TYPES) or options.get("forceInput"):
            continue
        slots.append(name)
        if options.get("image_upload") or options.get("video_upload") or options.get("control_after_generate"):
            slots.append(None)
        if options.get("audio_upload"):
            slots += [None, None]
    return slots


def _type_of(kind: Any) -> str:
    return "COMBO" if isinstance(kind, list) else str(kind)


def _fits(link_type: str, socket_type: str) -> bool:
    return link_type == socket_type or "*" in (link_type, socket_type) or link_type in socket_type.split(",")


def ui_problems(ui: dict, object_info: dict) -> list[str]:
    problems: list[str] = []
    nodes = {node["id"]: node for node in ui["nodes"]}
    for node in ui["nodes"]:
        kind = node["type"]
        if kind in FRONTEND_ONLY:
            continue
        if kind not in object_info:
            problems.append(f"node {node['id']}: unknown type {kind}")
            continue
        slots = widget_slots(object_info[kind])
        if len(node.get("widgets_values", [])) != len(slots):
            count = len(node.get("widgets_values", []))
            problems.append(f"node {node['id']} ({kind}): {count} widget values, {len(slots)} widgets")
    for link_id, src, src_slot, dst, dst_slot, link_type in ui["links"]:
        origin, target = nodes.get(src), nodes.get(dst)
        if origin is None or target is None:
            problems.append(f"link {link_id}: missing node")
            continue
        outputs = object_info.get(origin["type"], {}).get("output", [])
        if src_slot >= len(outputs) or not _fits(link_type, _type_of(outputs[src_slot])):
            problems.append(f"link {link_id}: {origin['type']} has no {link_type} output at slot {src_slot}")
        if dst_slot >= len(target["inputs"]) or target["inputs"][dst_slot].get("link") != link_id:
            problems.append(f"link {link_id}: {target['type']} input slot {dst_slot} does not hold it")
            continue
        name = target["inputs"][dst_slot]["name"]
        try:
            socket = _type_of(_spec(object_info[target["type"]], name)[0])
        except KeyError:
            problems.append(f"link {link_id}: {target['type']} has no input {name}")
            continue
        if not _fits(link_type, socket):
            problems.append(f"link {link_id}: {link_type} into {target['type']}.{name} ({socket})")
        if origin["outputs"][src_slot].get("links") is None or link_id not in origin["outputs"][src_slot]["links"]:
            problems.append(f"link {link_id}: not listed on {origin['type']} output {src_slot}")
    return problems


def ui_to_api(ui: dict, object_info: dict) -> dict[str, dict]:
    """The API prompt of a UI workflow, as the frontend builds it (frontend-only nodes dropped)."""
    links = {link[0]: link for link in ui["links"]}
    prompt: dict[str, dict] = {}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) != 0:
            continue
        inputs: dict[str, Any] = {}
        for name, value in zip(widget_slots(object_info[node["type"]]), node.get("widgets_values", []), strict=False):
            if name is not None:
                inputs[name] = value
        for socket in node["inputs"]:
            if socket.get("link") is not None:
                _, src, slot, *_ = links[socket["link"]]
                inputs[socket["name"]] = [str(src), slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
