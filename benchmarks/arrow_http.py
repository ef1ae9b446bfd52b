"""Arrow over HTTP: `GET /v1/dataframes/{id}.arrow` from a real `clustore-lite serve`,
read into a pyarrow Table by a client, against pyarrow reading the same table from an
Arrow IPC file on disk (not memory-mapped), interleaved in one run.

    .venv/bin/python benchmarks/arrow_http.py [--rows 2000000] [--columns 16] [--rounds 5]"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import clustore_lite  # noqa: E402
from serving import running_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    table = pa.table({f"c{i}": rng.random(args.rows) for i in range(args.columns)})
    megabytes = table.nbytes / 1e6
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        with clustore_lite.open(work / "store.sqlite") as store:
            frame = store.dataframes.create(table)["id"]
        with ipc.new_file(work / "table.arrow", table.schema) as writer:
            writer.write_table(table)
        http_times, file_times = [], []
        with running_server(work / "store.sqlite") as url:
            host, port = url.removeprefix("http://").split(":")
            for _ in range(args.rounds):
                started = time.perf_counter()
                connection = http.client.HTTPConnection(host, int(port), timeout=120)
                connection.request("GET", f"/v1/dataframes/{frame}.arrow")
                response = connection.getresponse()
                got = ipc.open_stream(pa.py_buffer(response.read())).read_all()
                connection.close()
                http_times.append(time.perf_counter() - started)
                assert got.num_rows == args.rows
                started = time.perf_counter()
                with pa.OSFile(str(work / "table.arrow")) as source:
                    ipc.open_file(source).read_all()
                file_times.append(time.perf_counter() - started)
    over_http, disk = megabytes / statistics.median(http_times), megabytes / statistics.median(file_times)
    print(f"| GET .arrow ({megabytes:.0f} MB) | {over_http:.0f} MB/s | IPC file read {disk:.0f} MB/s "
          f"| {over_http / disk:.2f}x | target >= 0.5x |")


if __name__ == "__main__":
    main()
