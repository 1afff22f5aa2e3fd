"""The query behind ``GET /executions``: filters joined with AND, newest first."""

from __future__ import annotations

from typing import Any

from gateway.domain import ExecutionQuery


def list_sql(query: ExecutionQuery, dialect: str) -> tuple[str, dict[str, Any]]:
    """The ``SELECT`` for one page of executions and its named parameters."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": query.limit}
    if query.statuses:
        names = [f":status{i}" for i in range(len(query.statuses))]
        where.append(f"status IN ({', '.join(names)})")
        params.update({n[1:]: s.value for n, s in zip(names, query.statuses, strict=True)})
    elif not query.include_running:
        where.append("status <> 'running'")
    simple = {
        "id < :before_id": query.before_id,
        "workflow_id = :workflow_id": query.workflow_id,
        "project_id = :project_id": query.project_id,
        "started_at > :started_after": query.started_after,
        "started_at < :started_before": query.started_before,
        "wait_till > :wait_till_after": query.wait_till_after,
        "wait_till < :wait_till_before": query.wait_till_before,
    }
    for clause, value in simple.items():
        if value is not None:
            where.append(clause)
            params[clause.split(":")[1]] = value
    for i, (key, value) in enumerate(query.custom_data):
        if dialect == "sqlite":
            where.append(f"json_extract(custom_data, :cd_key{i}) = :cd_value{i}")
            params[f"cd_key{i}"] = f'$."{key}"'
        else:
            where.append(f"(custom_data::jsonb ->> :cd_key{i}::text) = :cd_value{i}")
            params[f"cd_key{i}"] = key
        params[f"cd_value{i}"] = value
    for i, name in enumerate(query.tags):
        where.append(
            "EXISTS (SELECT 1 FROM execution_tags et JOIN tags t ON t.id = et.tag_id "
            f"WHERE et.execution_id = executions.id AND t.name = :tag{i})"
        )
        params[f"tag{i}"] = name
    sql = "SELECT * FROM executions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id DESC LIMIT :limit", params
