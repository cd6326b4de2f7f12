"""``bench --processes`` decides exactly as ``run`` does (one function, not two formulas)."""

from dataclasses import replace

from streams.bench.pipeline import bench_config, processes_for
from streams.config import load_config
from streams.scale.supervisor import resolve_processes
from tests.helpers import free_port, write_config


def test_bench_and_run_agree_on_worker_processes(assets, tmp_path):
    base = load_config(
        write_config(
            tmp_path / "c.yaml",
            [{"id": "bikes", "url": str(assets.videos["bikes.mp4"])}],
            free_port(),
        )
    )
    for streams in (1, 5, 48):
        config = bench_config(base, streams)
        for wanted in ("auto", "1", "2", "64"):
            processes = "auto" if wanted == "auto" else int(wanted)
            run_says = resolve_processes(
                replace(config, workers=replace(config.workers, processes=processes))
            )[0]
            assert processes_for(config, wanted) == run_says, (streams, wanted)
    # On the CPU backend ``auto`` is one process, however many streams (the old bench
    # formula said two for 48 streams); an explicit number is capped at the stream count.
    assert processes_for(bench_config(base, 48), "auto") == 1
    assert processes_for(bench_config(base, 5), "64") == 5
