"""Datasets, tasks and trackings: the work of an organization."""

from __future__ import annotations

from typing import Any

from ..arrow import codec
from .. import values as v
from ..errors import InvalidValue
from .base import Collection, OwnsAccess, reference
from .dataframes import write_size


class Datasets(OwnsAccess):
    table_name = "dataset"
    settable = {"name": v.check_name, "organizationId": lambda i: v.check_id(i, "organizationId"),
                "ownerId": reference("ownerId")}
    references = {"organizationId": "organization", "ownerId": "user"}

    def create(self, organization_id: str, name: str, data: Any = None,
               owner_id: str | None = None, metadata: dict | None = None,
               chunk_rows: int = codec.DEFAULT_CHUNK_ROWS, compression: str | None = None,
               public: str | None = None, webhook: str | None = None,
               id: str | None = None) -> v.Record:
        """A dataset and its dataframe (empty when `data` is None), in one transaction."""
        values = self.with_id(self.checked({"organizationId": organization_id, "name": name,
                                            "ownerId": owner_id}), id)
        frames = self.store.dataframes
        if data is not None:  # refused before gigabytes are written, not after
            self.store.authorize("insert", self.table.name,
                                 {**values, "public": public, "webhook": webhook})
        with frames.staged(data, chunk_rows, compression) as data, \
                self.db.bulk(write_size(data)):
            frame = frames.create_owned(data, metadata, chunk_rows, compression)
            return self.insert_with_access({**values, "dataframeId": frame["id"]}, public, webhook)

    def read(self, id: str, columns: list[str] | None = None):
        """The dataset's dataframe as a pyarrow Table."""
        return self.store.dataframes.read(self._frame(id), columns)

    def append(self, id: str, data: Any, chunk_rows: int = codec.DEFAULT_CHUNK_ROWS) -> v.Record:
        return self.store.dataframes.append(self._frame(id), data, chunk_rows)

    def iter_batches(self, id: str):
        return self.store.dataframes.iter_batches(self._frame(id))

    def _frame(self, id: str) -> str:
        frame = self.get(id)["dataframeId"]
        if frame is None:
            raise InvalidValue(f"dataset {id} has no dataframe")
        return frame


RESULT_FRAMES = {"centroids": "centroidsId", "labels": "labelsId"}


class Tasks(OwnsAccess):
    table_name = "task"
    settable = {
        "name": v.check_name, "organizationId": lambda i: v.check_id(i, "organizationId"),
        "ownerId": reference("ownerId"), "datasetId": reference("datasetId"),
        "algorithm": v.check_algorithm,
        "identifier": lambda s: v.check_text(s, "identifier"),
        "variables": lambda j: v.check_json(j, "variables"),
        "predictions": lambda j: v.check_json(j, "predictions"),
    }
    references = {"organizationId": "organization", "ownerId": "user", "datasetId": "dataset"}

    def create(self, organization_id: str, name: str, dataset_id: str | None = None,
               owner_id: str | None = None, algorithm: dict | None = None,
               identifier: str | None = None, variables: Any = None, predictions: Any = None,
               centroids: Any = None, labels: Any = None,
               public: str | None = None, webhook: str | None = None,
               id: str | None = None) -> v.Record:
        """A task; `centroids` and `labels` take dataframes like datasets do."""
        values = self.with_id(self.checked({
            "organizationId": organization_id, "name": name, "datasetId": dataset_id,
            "ownerId": owner_id, "algorithm": algorithm, "identifier": identifier,
            "variables": variables, "predictions": predictions}), id)
        with self.db.bulk(sum(codec.size_hint(d) or 0 for d in (centroids, labels))):
            for field, column in RESULT_FRAMES.items():
                data = {"centroids": centroids, "labels": labels}[field]
                if data is not None:
                    values[column] = self.store.dataframes.create_owned(data)["id"]
            return self.insert_with_access(values, public, webhook)

    def update(self, id: str, centroids: Any = None, labels: Any = None, **changes) -> v.Record:
        """Change fields; `centroids`/`labels` given as data replace those dataframes."""
        values = self.checked(changes)
        with self.db.bulk(sum(codec.size_hint(d) or 0 for d in (centroids, labels))):
            task = self.get(id)
            self.store.authorize("update", "task", task, values)
            replaced = []
            for field, data in (("centroids", centroids), ("labels", labels)):
                if data is not None:
                    column = RESULT_FRAMES[field]
                    values[column] = self.store.dataframes.create_owned(data)["id"]
                    replaced.append(task[column])
            self.write_update(id, values)
            for old in filter(None, replaced):
                self.db.execute("DELETE FROM dataframe WHERE id = ?", (old,))
            return self.get(id)

    def centroids(self, id: str):
        return self._result(id, "centroidsId")

    def labels(self, id: str):
        return self._result(id, "labelsId")

    def _result(self, id: str, column: str):
        frame = self.get(id)[column]
        return None if frame is None else self.store.dataframes.read(frame)


class Trackings(Collection):
    table_name = "tracking"
    settable = {"userId": reference("userId"), "organizationId": reference("organizationId"),
                "resource": lambda s: v.check_text(s, "resource"),
                "resourceId": reference("resourceId"), "kind": lambda s: v.check_name(s, "kind"),
                "payload": lambda j: v.check_json(j, "payload")}
    references = {"userId": "user", "organizationId": "organization"}

    def create(self, kind: str, user_id: str | None = None, organization_id: str | None = None,
               resource: str | None = None, resource_id: str | None = None,
               payload: Any = None, id: str | None = None) -> v.Record:
        """Record one user interaction."""
        return self.insert(self.with_id(self.checked({
            "kind": kind, "userId": user_id, "organizationId": organization_id,
            "resource": resource, "resourceId": resource_id, "payload": payload}), id))
