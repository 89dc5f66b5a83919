"""The HTTP API through FastAPI's test client: the same numbers as ``timesformer predict``, every
bad input a 4xx naming the problem with no upload left behind, concurrent clients batched, the
queue limit (503 + Retry-After), and a server that outlives a failing request."""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the serve extra: pip install 'timesformer[serve]'")

from serve.conftest import RATE, upload
from timesformer.cli import main


def _predict_cli(capsys, *argv) -> dict:
    """``timesformer predict --json`` on one video: its JSON object."""
    code = main(["predict", *map(str, argv), "--sampling-rate", str(RATE), "--json",
                 "--no-progress"])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    return json.loads(out)


def test_healthz_names_the_model(client, checkpoint):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["model"] == str(checkpoint) and body["classes"] == 5
    assert body["clip"]["frames"] == 4 and body["clip"]["sampling_rate"] == RATE


def test_predict_gives_the_numbers_of_the_predict_command(
    client, capsys, checkpoint, videos, uploads
):
    expected = _predict_cli(capsys, videos[1], "--checkpoint", checkpoint, "--topk", 3)
    uploaded = client.post("/v1/predict", files=upload(videos[1]), data={"topk": "3"})
    by_path = client.post("/v1/predict", json={"path": videos[1].name, "topk": 3})
    for response in (uploaded, by_path):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["top"] == expected["top"] and body["views"] == expected["views"] == 3
        assert body["path"] == videos[1].name and body["windows"] is None
        assert body["duration"] == pytest.approx(4.0)
    assert list(uploads.iterdir()) == []


def test_windows_give_the_numbers_of_predict_windows(client, capsys, checkpoint, videos):
    expected = _predict_cli(
        capsys, videos[0], "--checkpoint", checkpoint, "--windows", "--stride", 0.5
    )
    response = client.post(
        "/v1/predict", files=upload(videos[0]), data={"windows": "true", "stride": "0.5"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # 8 windows every 0.5 s, and one that ends with the video.
    assert body["windows"] == expected["windows"] and len(body["windows"]) == 9
    assert body["top"] == expected["top"] and body["views"] == expected["views"]


@pytest.mark.parametrize("fmt", ["png", "gif"])
def test_explain_returns_the_rollout_picture(client, videos, uploads, fmt):
    response = client.post(f"/v1/explain?format={fmt}", files=upload(videos[0]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{fmt}"
    magic = b"\x89PNG" if fmt == "png" else b"GIF8"
    assert response.content.startswith(magic)
    assert list(uploads.iterdir()) == []


def _bad_cases(videos, allowed):
    """(id, request kwargs, status, code, a word the message must hold)."""
    good = videos[0].read_bytes()
    outside = allowed.parent / "secret.mp4"
    outside.write_bytes(good)
    (allowed / "link_out.mp4").symlink_to(outside)
    return [
        ("not a video", {"files": {"video": ("notes.mp4", b"just some text\n" * 50)}},
         422, "bad_video", "notes.mp4"),
        ("truncated video", {"files": {"video": ("cut.mp4", good[: len(good) // 2])}},
         422, "bad_video", "cut.mp4"),
        ("empty upload", {"files": {"video": ("empty.mp4", b"")}}, 422, "bad_video", "empty"),
        ("missing field", {"files": {"clip": ("a.mp4", b"x")}}, 400, "missing_field", "'video'"),
        ("no body", {}, 400, "missing_field", "'video'"),
        ("json without path", {"json": {"topk": 2}}, 400, "missing_field", "path"),
        ("json not an object", {"json": ["a.mp4"]}, 400, "bad_request", "object"),
        ("broken json", {"content": b"{nope", "headers": {"content-type": "application/json"}},
         400, "bad_request", "JSON"),
        ("other content type", {"content": b"abc", "headers": {"content-type": "text/plain"}},
         415, "unsupported_media_type", "text/plain"),
        ("truncated multipart", {"content": b"--xyz\r\nContent-Disposition: form-data; name=\"video\"; "
         b"filename=\"a.mp4\"\r\n\r\nabc", "headers": {"content-type": "multipart/form-data; boundary=xyz"}},
         400, "bad_request", "closing boundary"),
        ("absolute path outside", {"json": {"path": "/etc/passwd"}}, 403, "forbidden_path", "outside"),
        ("dot-dot path", {"json": {"path": "../secret.mp4"}}, 403,
         "forbidden_path", "outside"),
        ("symlink out", {"json": {"path": "link_out.mp4"}}, 403, "forbidden_path", "outside"),
        ("missing file", {"json": {"path": "nothing.mp4"}}, 404, "not_found", "nothing.mp4"),
        ("bad topk", {"files": upload(videos[0]), "data": {"topk": "0"}}, 400, "bad_parameter", "topk"),
        ("text topk", {"json": {"path": videos[0].name, "topk": "five"}}, 400, "bad_parameter", "topk"),
        ("stride alone", {"json": {"path": videos[0].name, "stride": 1}}, 400, "bad_parameter", "windows"),
        ("bad stride", {"json": {"path": videos[0].name, "windows": True, "stride": -1}}, 400,
         "bad_parameter", "stride"),
        ("bad windows", {"json": {"path": videos[0].name, "windows": "maybe"}}, 400, "bad_parameter",
         "windows"),
    ]  # fmt: skip


def test_every_bad_input_is_a_4xx_naming_it_and_leaves_no_file(client, videos, uploads, allowed):
    for name, kwargs, status, code, word in _bad_cases(videos, allowed):
        response = client.post("/v1/predict", **kwargs)
        assert response.status_code == status, (name, response.text)
        body = response.json()
        assert body["code"] == code and word in body["error"], (name, body)
        assert list(uploads.iterdir()) == [], name
    # The server is still there and still right.
    assert client.post("/v1/predict", files=upload(videos[0])).status_code == 200


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ("format=bmp", "format"),
        ("head_fusion=median", "head_fusion"),
        ("discard_ratio=1", "discard"),
    ],
)
def test_bad_explain_options(client, videos, uploads, query, word):
    response = client.post(f"/v1/explain?{query}", files=upload(videos[0]))
    assert response.status_code == 400 and word in response.json()["error"]
    assert list(uploads.iterdir()) == []


def test_an_upload_over_the_limit_is_refused_while_it_streams(make_client, videos, uploads):
    client = make_client(max_upload_mb=0.002)  # about 2 KB; the video is about 6 KB
    response = client.post("/v1/predict", files=upload(videos[0]))
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert "limit of 0.002 MiB" in response.json()["error"]
    assert list(uploads.iterdir()) == []


def test_an_upload_declared_over_the_limit_is_refused_before_reading(make_client, uploads):
    client = make_client(max_upload_mb=1)
    body = b"--b\r\n" + b"x" * (3 * 2**20)
    response = client.post(
        "/v1/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413 and "3.0 MiB" in response.json()["error"]
    assert list(uploads.iterdir()) == []


def test_paths_are_refused_without_allow_dir(make_client, videos):
    response = make_client(allow_dirs=()).post("/v1/predict", json={"path": str(videos[0])})
    assert response.status_code == 403 and "--allow-dir" in response.json()["error"]


def test_concurrent_clients_share_batches_and_get_their_own_answers(make_client, videos, uploads):
    client = make_client(batch_window_ms=300, max_batch=64, workers=3)
    alone = {v.name: client.post("/v1/predict", files=upload(v)).json() for v in videos}
    batcher = client.app.state.server.batcher
    before = batcher.batches
    order = [videos[i % 3] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda v: client.post("/v1/predict", files=upload(v)), order))
    for video, response in zip(order, answers, strict=True):
        assert response.status_code == 200
        got, want = response.json(), alone[video.name]
        assert [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]]
        for a, b in zip(got["top"], want["top"], strict=True):
            assert a["prob"] == pytest.approx(b["prob"], abs=2e-6)
    assert batcher.batches - before < len(order)  # some requests shared a forward pass
    assert list(uploads.iterdir()) == []


def test_batching_off_runs_each_request_alone(make_client, videos):
    client = make_client(max_batch=1, batch_window_ms=300)
    batcher = client.app.state.server.batcher
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda v: client.post("/v1/predict", files=upload(v)), videos))
    assert [r.status_code for r in answers] == [200] * 3
    assert batcher.batches == batcher.jobs == 3


def _hold_the_model(client):
    """Make the model thread wait: returns (entered, release) events."""
    batcher = client.app.state.server.batcher
    forward = batcher.forward_fn
    entered, release = threading.Event(), threading.Event()

    def held(views):
        entered.set()
        release.wait(30)
        return forward(views)

    batcher.forward_fn = held
    return entered, release


def test_a_full_queue_answers_503_with_retry_after(make_client, videos, uploads):
    client = make_client(queue_size=1)
    entered, release = _hold_the_model(client)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/v1/predict", files=upload(videos[0]))
        assert entered.wait(30)
        refused = client.post("/v1/predict", files=upload(videos[1]))
        release.set()
        assert first.result().status_code == 200
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["code"] == "busy" and "limit is 1" in refused.json()["error"]
    assert client.get("/healthz").json()["queue"] == {"in_progress": 0, "limit": 1}
    assert client.post("/v1/predict", files=upload(videos[1])).status_code == 200
    assert list(uploads.iterdir()) == []


def test_a_failing_model_gives_500_and_the_server_goes_on(client, videos, uploads, caplog):
    batcher = client.app.state.server.batcher
    forward = batcher.forward_fn

    def broken(views):
        batcher.forward_fn = forward
        raise RuntimeError("out of memory, say")

    batcher.forward_fn = broken
    with caplog.at_level(logging.ERROR, logger="timesformer.serve"):
        response = client.post("/v1/predict", files=upload(videos[0]))
    assert response.status_code == 500 and response.json()["code"] == "internal"
    assert "out of memory, say" in caplog.text  # the traceback is in the log, not the answer
    assert client.post("/v1/predict", files=upload(videos[0])).status_code == 200
    assert list(uploads.iterdir()) == []


def test_one_access_line_per_request_with_its_time(client, videos, caplog):
    with caplog.at_level(logging.INFO, logger="timesformer.serve.access"):
        client.post("/v1/predict", files=upload(videos[0]))
        client.get("/healthz")
        client.get("/nowhere")
    lines = [r.getMessage() for r in caplog.records if r.name == "timesformer.serve.access"]
    assert len(lines) == 3
    assert '"POST /v1/predict HTTP/1.1" 200' in lines[0] and lines[0].endswith(" s")
    assert '"GET /nowhere HTTP/1.1" 404' in lines[2]


def test_the_model_thread_starts_without_a_lifespan(served, checkpoint, videos):
    from fastapi.testclient import TestClient

    from timesformer.serve.app import create_app
    from timesformer.serve.settings import ServeSettings

    app = create_app(served, ServeSettings(checkpoint=str(checkpoint), sampling_rate=RATE))
    client = TestClient(app)  # not entered: no startup event
    assert client.post("/v1/predict", files=upload(videos[0])).status_code == 200
    app.state.server.stop()


def test_unknown_routes_answer_json(client):
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert client.get("/v1/predict").status_code == 405


def test_the_page_and_its_files_fetch_nothing_from_outside(client):
    from timesformer.serve.app import STATIC

    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in sorted(os.listdir(STATIC)):
        text = client.get(f"/static/{name}").text
        assert text == (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
