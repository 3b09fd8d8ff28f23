"""The weights registry and download cache, against a real HTTP server on 127.0.0.1."""

import functools
import http.server
import json
import threading

import pytest

from anatcl_nipype.encoder import weights
from anatcl_nipype.encoder.weights import (
    RUN_NAME,
    cached_weights_path,
    fetch_weights,
    list_weights,
    verify_cached_weights,
    weights_url,
)
from anatcl_nipype.errors import WeightsDownloadError
from anatcl_nipype.files import sha256_file


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; with ``cut_after`` set, drops the connection mid-file."""

    cut_after = None

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.cut_after is None:
            return super().do_GET()
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: self.cut_after])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, random_weights, monkeypatch):
    """A local server holding one generated checkpoint at the released path of global fold 2."""
    root = tmp_path / "served"
    run = root / RUN_NAME.format(descriptor="global", fold=2)
    run.mkdir(parents=True)
    (run / "weights.pth").write_bytes(random_weights.read_bytes())
    handler = type("Handler", (_Handler,), {})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANATCL_NIPYPE_WEIGHTS_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield httpd, handler, run / "weights.pth"
    httpd.shutdown()


def test_registry_has_the_ten_released_checkpoints(monkeypatch):
    monkeypatch.delenv("ANATCL_NIPYPE_WEIGHTS_URL", raising=False)
    urls = {(w["descriptor"], w["fold"]): w["url"] for w in list_weights()}
    assert len(urls) == 10
    assert urls[("local", 4)] == (
        "https://gitlab.di.unito.it/barbano/anatcl-pretrained/-/raw/main/"
        "0_obhn64_resnet18_amp_yaware_adam_tf_none_lr0.0001_step_step10_rate0.9_wd5e-05_bsz32"
        "_trainall_False_temp0.1_views2_kernel_rbf_sigma2.0_alpha1.0_anat_desikan_normTrue"
        "_subsetTrue_local_lambd1.0_fold4_splits5_trial0/weights.pth"
    )
    with pytest.raises(WeightsDownloadError, match="descriptor='both', fold=5"):
        weights_url("both", 5)


def test_fetch_downloads_records_hash_and_then_works_offline(server, random_weights):
    httpd, _, served = server
    path = fetch_weights("global", 2)
    assert path == cached_weights_path("global", 2)
    assert path.read_bytes() == served.read_bytes()
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == sha256_file(served)
    assert record["url"].startswith("http://127.0.0.1:")
    httpd.shutdown()  # offline from here on
    assert fetch_weights("global", 2) == path


def test_changed_cache_file_is_detected(server):
    path = fetch_weights("global", 2)
    with open(path, "ab") as stream:
        stream.write(b"tampered")
    with pytest.raises(WeightsDownloadError, match="differs from the expected"):
        verify_cached_weights("global", 2)
    with pytest.raises(WeightsDownloadError, match="Delete it and fetch it again"):
        fetch_weights("global", 2)


def test_known_hash_mismatch_is_refused(server, monkeypatch):
    monkeypatch.setitem(weights.KNOWN_SHA256, ("global", 2), "0" * 64)
    with pytest.raises(WeightsDownloadError, match="cannot download"):
        fetch_weights("global", 2)
    assert not cached_weights_path("global", 2).exists()


def test_interrupted_download_leaves_no_file_and_a_retry_succeeds(server):
    _, handler, served = server
    handler.cut_after = 1_000_000
    with pytest.raises(WeightsDownloadError, match="cannot download"):
        fetch_weights("global", 2)
    folder = cached_weights_path("global", 2).parent
    assert list(folder.iterdir()) == []  # no partial file under any name
    handler.cut_after = None
    assert fetch_weights("global", 2).read_bytes() == served.read_bytes()


def test_a_page_that_is_not_a_checkpoint_is_removed(server):
    _, _, served = server
    served.write_text("<html>login required</html>")
    with pytest.raises(WeightsDownloadError, match="did not serve an AnatCL checkpoint"):
        fetch_weights("global", 2)
    assert not cached_weights_path("global", 2).exists()


def test_unreachable_host_says_where_to_put_the_file_in_a_few_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("ANATCL_NIPYPE_HOME", str(tmp_path))
    monkeypatch.setenv("ANATCL_NIPYPE_WEIGHTS_URL", "http://anatcl-weights.invalid")
    with pytest.raises(WeightsDownloadError) as error:
        fetch_weights("local", 1)
    lines = str(error.value).splitlines()
    assert lines == [
        "cannot download AnatCL weights (ConnectionError: no connection, or the transfer "
        "broke off).",
        f"  Download {weights_url('local', 1)}",
        f"  and save it as {tmp_path / 'weights' / 'anatcl-local-fold1.pth'}",
        "  (on another machine if this one is offline), or pass --weights FILE. "
        "`anatcl-nipype weights list` shows every file and where it goes.",
    ]


def test_a_server_error_is_named_by_its_status(server):
    _, _, served = server
    served.unlink()
    with pytest.raises(WeightsDownloadError, match=r"\(HTTP 404 File not found\)"):
        fetch_weights("global", 2)


def weights_cli(*args):
    from anatcl_nipype.cli.main import main

    return main(["weights", *args])


def test_weights_list_says_where_each_file_goes_and_its_state(server, random_weights, capsys):
    fetch_weights("global", 2)
    by_hand = cached_weights_path("local", 0)
    by_hand.write_bytes(random_weights.read_bytes())
    changed = cached_weights_path("global", 3)
    changed.write_bytes(random_weights.read_bytes())
    changed.with_suffix(".json").write_text(json.dumps({"sha256": "0" * 64}))
    assert weights_cli("list", "--fold", "0", "2", "3") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Weights cache: {cached_weights_path('global', 0).parent}"
    states = {line.split(":")[0]: line.split(": ", 1)[1] for line in out[1::3]}
    assert states == {
        "global fold 0": "not present",
        "global fold 2": "present, verified",
        "global fold 3": "present but CHANGED since it was downloaded: delete it and fetch it "
                         "again",
        "local fold 0": "present, placed by hand (its SHA-256 is recorded at first use)",
        "local fold 2": "not present", "local fold 3": "not present"}
    assert out[4:7] == ["global fold 2: present, verified",
                        f"    URL:      {weights_url('global', 2)}",
                        f"    place at: {cached_weights_path('global', 2)}"]
    assert not by_hand.with_suffix(".json").exists()  # listing records nothing


def test_weights_without_an_action_says_what_the_actions_do(capsys):
    assert weights_cli() == 2
    err = capsys.readouterr().err
    assert "say what to do: list (where each file goes, what is here), fetch (download) or " \
           "verify (re-check the cache)" in err
    assert "required" not in err
