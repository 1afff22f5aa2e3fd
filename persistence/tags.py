"""Tags: named labels an execution may carry, each remembering the project that made it.

A key bound to a project renames or deletes only its project's tags that no execution of
another project (or of none) carries; a key without a project manages every tag.
"""

from __future__ import annotations

from gateway.domain import Tag
from persistence import rows
from persistence import script as q
from persistence.script import Row, Script


def _tag(found: Row | None) -> Tag | None:
    return None if found is None else rows.tag_from_row(found)


def create_tag(
    tag_id: str, name: str, now: int, project_id: str | None = None
) -> Script[Tag | None]:
    """A new tag of ``project_id`` (the creating key's project); ``None`` if the name is
    taken."""
    params = {"id": tag_id, "name": name, "now": now, "project_id": project_id}
    return _tag((yield from q.row("create_tag", params)))


def get_tag(tag_id: str) -> Script[Tag | None]:
    """One tag."""
    return _tag((yield from q.row("get_tag", {"id": tag_id})))


def list_tags(limit: int, after_id: str | None) -> Script[list[Tag]]:
    """Tags ordered by id, after ``after_id``."""
    found = yield from q.rows("list_tags", {"limit": limit, "after": after_id})
    return [rows.tag_from_row(r) for r in found]


def rename_tag(
    tag_id: str, name: str, now: int, project_id: str | None = None
) -> Script[Tag | None]:
    """Rename a tag; ``None`` if it does not exist, the name is taken, or a ``project_id``
    is given and the tag is not ``tag_manageable`` by it."""
    params = {"id": tag_id, "name": name, "now": now, "project_id": project_id}
    return _tag((yield from q.row("rename_tag", params)))


def delete_tag(tag_id: str, project_id: str | None = None) -> Script[Tag | None]:
    """Delete a tag (it leaves every execution); the deleted tag. ``None`` if it does not
    exist, or a ``project_id`` is given and the tag is not ``tag_manageable`` by it."""
    return _tag((yield from q.row("delete_tag", {"id": tag_id, "project_id": project_id})))


def tag_manageable(tag_id: str, project_id: str | None) -> Script[bool]:
    """Whether a key of ``project_id`` may rename or delete the tag: any key without a
    project may; a project's key only if the tag is its project's and no execution of
    another project (or of none) carries it."""
    found = yield from q.row("tag_manageable", {"id": tag_id, "project_id": project_id})
    return found is not None


def execution_tags(execution_id: int) -> Script[list[Tag]]:
    """The tags of an execution, by name."""
    found = yield from q.rows("execution_tags", {"id": execution_id})
    return [rows.tag_from_row(r) for r in found]


def set_execution_tags(execution_id: int, tag_ids: tuple[str, ...]) -> Script[bool]:
    """Replace an execution's tags; ``False`` (nothing changed) if any id is unknown."""
    unique = sorted(set(tag_ids))
    known = yield from q.one("count_known_tags", {"tag_ids": rows.dump(unique)})
    if known["n"] != len(unique):
        return False
    yield from q.count("clear_execution_tags", {"id": execution_id})
    yield from q.many("add_execution_tag", [{"id": execution_id, "tag_id": t} for t in unique])
    return True
