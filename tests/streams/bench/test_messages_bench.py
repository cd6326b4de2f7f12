"""`python -m streams.bench.messages` runs the completer's publishing path end to end (no timing
is asserted: it is a benchmark, the figures are for people)."""

import json

from processors.labels import COCO80
from streams.bench import messages as bench
from streams.bus.messages import decode, encode_detection_batch, validate


def test_every_message_is_sent_and_a_subscriber_gets_them(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert (
        bench.main(
            [
                "--batch",
                "8",
                "--batches",
                "3",
                "--repeats",
                "2",
                "--warmup",
                "1",
                "--streams",
                "5",
                "--subscriber",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["published"] == result["received"] == 8 * 3 * 3
    assert result["publish_dropped"] == 0
    assert result["median_us_per_frame"]["cpu_us"] > 0
    assert "us per frame" in capsys.readouterr().out


def test_the_made_up_batches_are_valid_det_messages():
    batches = bench.make_batches(2, 16, 4, 8.0, (1080, 1920), seed=3)
    for batch in batches:
        messages, _ = encode_detection_batch(
            batch.frames,
            batch.decoded,
            COCO80,
            model=bench.MODEL,
            started_mono_s=batch.started_mono_s,
            now_mono_s=batch.started_mono_s + 0.02,
            preprocess_ms=batch.preprocess_ms,
            inference_ms=batch.inference_ms,
            postprocess_ms=batch.postprocess_ms,
        )
        assert len(messages) == 16
        for topic, payload in messages:
            validate(topic, decode(payload))
    assert sum(len(d) for b in batches for d in b.decoded) > 100
