"""Uploads: streamed to a file in the upload folder whatever the client calls it, refused as they
pass the limit when no length is declared, and deleted however the request ends."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra: pip install 'timesformer[serve]'")

from serve.conftest import upload


def test_a_file_name_with_folders_stays_a_name(client, videos, uploads, tmp_path):
    response = client.post("/v1/predict", files=upload(videos[0], "../../etc/evil.mp4"))
    assert response.status_code == 200 and response.json()["path"] == "evil.mp4"
    assert list(uploads.iterdir()) == [] and not (tmp_path / "etc").exists()


def test_a_chunked_upload_over_the_limit_stops_as_it_passes(make_client, videos, uploads):
    client = make_client(max_upload_mb=0.002)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n\r\n'
    ).encode()

    def chunks():  # no Content-Length: the server counts as the bytes come
        yield head
        for _ in range(1000):
            yield b"x" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/predict",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert list(uploads.iterdir()) == []


def test_fields_beside_the_video_are_small(client, videos, uploads):
    response = client.post("/v1/predict", files=upload(videos[0]), data={"topk": "1" * (70 * 1024)})
    assert response.status_code == 400 and "'topk' is over 64 KiB" in response.json()["error"]
    assert list(uploads.iterdir()) == []


def test_two_videos_in_one_request_are_refused(client, videos, uploads):
    files = [("video", (v.name, v.read_bytes(), "video/mp4")) for v in videos[:2]]
    response = client.post("/v1/predict", files=files)
    assert response.status_code == 400 and "one video per request" in response.json()["error"]
    assert list(uploads.iterdir()) == []
