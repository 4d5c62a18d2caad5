#!/usr/bin/env python3
"""Reads a chatvault backup with pyarrow and DuckDB, and writes a copy of it whose
messages table is rewritten by pyarrow (with a fresh id and a matching manifest).

usage: parquet_interop.py BACKUP_FOLDER REWRITTEN_FOLDER
Prints a JSON report: every Parquet table's row count and column types as pyarrow sees
them, and DuckDB's row count of each table.
"""
import hashlib
import json
import pathlib
import shutil
import sys

import duckdb
import pyarrow.parquet as pq


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    source = pathlib.Path(sys.argv[1])
    target = pathlib.Path(sys.argv[2])
    manifest = json.loads((source / "manifest.json").read_text())
    report = {"tables": {}}
    connection = duckdb.connect()
    for entry in manifest["files"]:
        if entry["kind"] != "parquet":
            continue
        path = source / entry["path"]
        table = pq.read_table(path)
        metadata = pq.read_metadata(path).metadata or {}
        duckdb_rows = connection.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]
        report["tables"][entry["table"]] = {
            "rows": table.num_rows,
            "row_groups": pq.ParquetFile(path).num_row_groups,
            "types": {field.name: str(field.type) for field in table.schema},
            "duckdb_rows": duckdb_rows,
            "positions": json.loads(metadata.get(b"chatvault.positions", b"[]")),
        }

    # The rewritten copy: pyarrow writes messages.parquet anew (its own writer, snappy,
    # its own row groups); the manifest is updated to match, under a new id.
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    messages = pq.read_table(source / "parquet" / "messages.parquet")
    pq.write_table(messages, target / "parquet" / "messages.parquet", compression="snappy", row_group_size=3)
    manifest["backup_id"] = manifest["backup_id"] + "-pyarrow"
    manifest["origin"] = "uploaded"
    for entry in manifest["files"]:
        path = target / entry["path"]
        entry["bytes"] = path.stat().st_size
        entry["sha256"] = sha256_of(path)
    text = json.dumps(manifest, indent=2).encode()
    (target / "manifest.json").write_bytes(text)
    (target / "manifest.sha256").write_text(hashlib.sha256(text).hexdigest() + "  manifest.json\n")
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
