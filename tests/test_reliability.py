"""Nothing lost, nothing duplicated, no tracebacks (issue 18): the run folder's lock, refusals
before anything is written, and a failed start that leaves no trace. Each test failed on the
code before its fix. Real runs of the trained tiny model; real processes for the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from labeldist.cli import main
from labeldist.runs import RunStore
from labeldist.runs.store import LOCK

ROOT_DATA = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny):
    data = tiny.tables((("train", 11, 30), ("dev", 6, 60)), votes=False)
    return tmp_path_factory.mktemp("reliability"), tiny.argv(data, "dev"), data


def _argv(base, out):
    return [*base, "--out", str(out), "--quiet"]


def test_a_second_writer_is_refused_naming_the_holder(setup, capsys):
    """Case 1: two `labeldist run` on one --out. While one holds the folder, the other stops with
    one line naming the holder's pid, writes nothing, and the folder ends with every id once."""
    root, base, _ = setup
    out = root / "locked"
    assert main(_argv(base, out)) == 0
    capsys.readouterr()
    with RunStore(out).lock():
        parts = sorted(p.name for p in (out / "records").iterdir())
        assert main(_argv(base, out)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is being written by another labeldist run" in err[0] and f"pid {os.getpid()}" in err[0]
        assert sorted(p.name for p in (out / "records").iterdir()) == parts
    ids = RunStore(out).read()["id"].tolist()
    assert len(ids) == len(set(ids)) == 6


def test_a_killed_holder_leaves_no_stale_lock(setup, tmp_path):
    """The lock is the kernel's: a holder killed with SIGKILL releases it, and the next run goes on."""
    root, base, _ = setup
    out = tmp_path / "run"
    assert main(_argv(base, out)) == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from labeldist.runs import RunStore
            with RunStore({str(out)!r}).lock():
                print("held", flush=True)
                time.sleep(600)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Exception, match="being written by another labeldist run"):
        with RunStore(out).lock():
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel releases the lock when the process is reaped
        try:
            with RunStore(out).lock():
                break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    assert main(_argv(base, out)) == 0


def test_a_folder_that_is_not_a_run_is_refused(setup, tmp_path, capsys):
    """Case 5: --out pointing at a user's folder: refused, nothing written among their files."""
    _, base, _ = setup
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert main(_argv(base, folder)) == 2
    err = capsys.readouterr().err
    assert "is not a run folder (no run.json) and is not empty" in err and "notes.txt" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    file_out = tmp_path / "a-file"
    file_out.write_text("x")
    assert main(_argv(base, file_out)) == 2
    assert "is a file, not a run folder" in capsys.readouterr().err


def test_a_failed_start_leaves_nothing_behind(setup, tmp_path, capsys):
    """Case 8: a model that cannot load writes no run.json, so the corrected command runs."""
    _, base, _ = setup
    out = tmp_path / "run"
    broken = list(base)
    broken[broken.index("--model") + 1] = str(tmp_path / "no-such-model")
    assert main(_argv(broken, out)) == 2
    capsys.readouterr()
    assert not out.exists()
    assert main(_argv(base, out)) == 0
    assert len(RunStore(out).read()) == 6 and (out / LOCK).is_file()


def test_a_sampler_that_cannot_serve_the_settings_leaves_nothing_behind(setup, tmp_path, capsys):
    """The covering sampler with fewer shots than labels fails before the model loads and
    before run.json is written (it failed after, and the corrected command was then refused as
    "a different config"); the corrected command runs."""
    _, base, _ = setup
    out = tmp_path / "run"
    shots = base.index("--shots") + 1
    broken = [*base[:shots], "2", *base[shots + 1 :], "--sampler", "covering"]
    assert main(_argv(broken, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "covering sampler" in err[0], err
    assert not out.exists()
    fixed = [*base[:shots], "2", *base[shots + 1 :], "--sampler", "random"]
    assert main(_argv(fixed, out)) == 0
    assert len(RunStore(out).read()) == 6


def test_a_split_without_items_is_refused(setup, tmp_path, capsys):
    """Case 3 (the run's side): a split with no item gives an error, not a 0-item run, whatever
    the loader: an empty table is refused by its loader, a header-only ConvAbuse file (official
    header) by the run."""
    _, base, data = setup
    (data / "empty.csv").write_text("id,text,labels\n")
    argv = list(base)
    argv[argv.index("--split") + 1] = "empty"
    out = tmp_path / "run"
    assert main(_argv(argv, out)) == 2
    assert "no items for split 'empty'" in capsys.readouterr().err
    assert not out.exists()
    convabuse = tmp_path / "convabuse"
    convabuse.mkdir()
    official = ROOT_DATA / "convabuse_original" / "ConvAbuseEMNLPtest.csv"
    if not official.is_file():
        pytest.skip("../shared/data/convabuse_original is absent: its header is not shipped here")
    header = official.read_text(encoding="utf-8").splitlines()[0]
    (convabuse / "ConvAbuseEMNLPtest.csv").write_text(header + "\n", encoding="utf-8")
    argv = list(base)
    argv[argv.index("--dataset") + 1] = "convabuse"
    argv[argv.index("--data-dir") + 1] = str(convabuse)
    argv[argv.index("--split") + 1] = "test"
    argv = [a for i, a in enumerate(argv) if not (a == "--option" or (i and argv[i - 1] == "--option"))]
    assert main(_argv(argv, out)) == 2
    err = capsys.readouterr().err
    assert "split 'test' has no items to label" in err, err
    assert not out.exists()


def test_config_values_of_the_wrong_type_are_refused(setup, tmp_path, capsys):
    """Case 4: YAML values click would coerce silently (seed 1.5 -> 1, a mapping as the model
    name) are one-line errors naming the file and key; so is a threshold outside [0, 1]."""
    _, base, _ = setup
    for setting, message in (
        ("seed: 1.5", "seed: expected a whole number, got 1.5"),
        ("model: {a: 1}", "model: expected a single value, got {'a': 1}"),
        ("chat: 'yes'", "chat: expected true or false, got 'yes'"),
        ("shots: [1, 2]", "shots: expected a whole number, got [1, 2]"),
    ):
        config = tmp_path / "run.yaml"
        config.write_text(setting + "\n")
        out = tmp_path / "run"
        assert main([*_argv(base, out), "--config", str(config)]) == 2, setting
        err = capsys.readouterr().err
        assert str(config) in err and message in err, err
        assert not out.exists()


def test_a_config_file_names_loader_options_like_the_option(setup, tmp_path):
    """Issue 19: keys are named like the options, --option included (`option:` as a mapping; the
    old `options:` still reads), and give the run the same loader options as the command line."""
    import json

    _, base, _ = setup
    argv, loader = [], {}
    it = iter(base)
    for arg in it:
        if arg == "--option":
            key, _, value = next(it).partition("=")
            loader[key] = value
        else:
            argv.append(arg)
    runs = {}
    for key in ("option", "options"):
        config = tmp_path / f"{key}.yaml"
        config.write_text(json.dumps({key: loader}) + "\n")  # JSON is YAML
        runs[key] = tmp_path / key
        assert main([*argv, "--config", str(config), "--limit", "2", "--out", str(runs[key])]) == 0
    by_flags = tmp_path / "flags"
    assert main([*base, "--limit", "2", "--out", str(by_flags)]) == 0
    options = [json.loads((path / "run.json").read_text())["config"]["options"] for path in (*runs.values(), by_flags)]
    assert options[0] == options[1] == options[2] and options[0]["label_list_column"] == "labels"


def test_evaluate_refuses_empty_runs_and_says_when_one_is_partial(setup, tmp_path, capsys):
    """Case 6: a run folder without records is an error (not an all-n/a table with NaN in the
    JSON); a partial run is evaluated with a note saying how many items it holds; the threshold
    is checked."""
    import json
    import shutil

    root, base, _ = setup
    partial = tmp_path / "partial"
    assert main([*_argv(base, partial), "--limit", "3"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--save", str(partial), "--resamples", "20", "--estimators", "max"]) == 0
    captured = capsys.readouterr()
    assert "3 of the split's 6 items are recorded" in captured.err
    result = json.loads((partial / "evaluation.json").read_text())
    assert result["items"] == 3 and any("3 of the split's 6" in note for note in result["notes"])
    assert "NaN" not in (partial / "evaluation.json").read_text()
    assert main(["evaluate", str(partial), "--threshold", "1.7"]) == 2
    assert "threshold must be a number in [0, 1] or 'tuned', not '1.7'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    shutil.copytree(partial, empty)
    shutil.rmtree(empty / "records")
    (empty / "evaluation.json").unlink()
    assert main(["evaluate", str(empty)]) == 2
    assert "has no records yet: nothing to evaluate" in capsys.readouterr().err
    assert not (empty / "evaluation.json").exists()


def test_bootstrap_intervals_do_not_depend_on_record_order(setup, tmp_path):
    """Case 10: the same records written in another order give the same intervals."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from labeldist.evaluation import evaluate_run

    root, base, _ = setup
    first = tmp_path / "first"
    assert main([*_argv(base, first), "--batch-size", "2"]) == 0
    shuffled = tmp_path / "shuffled"
    shutil.copytree(first, shuffled)
    parts = sorted((shuffled / "records").glob("part-*.parquet"))
    rows = pa.concat_tables([pq.read_table(p) for p in parts])
    for part in parts[1:]:
        part.unlink()
    pq.write_table(rows.take([5, 3, 1, 0, 4, 2]), parts[0])
    a = evaluate_run(first, ["max", "first"], n_resamples=50)
    b = evaluate_run(shuffled, ["max", "first"], n_resamples=50)
    assert a["estimators"] == b["estimators"]


def test_one_line_errors_instead_of_tracebacks(setup, tmp_path, capsys):
    """Case 7: an unknown loader option, invalid UTF-8 in a data file (with its line), and an
    OSError while writing (a real file-size limit, as a full disk) are one line and exit 2."""
    _, base, data = setup
    assert main(["data", "describe", "table", "--data-dir", str(data), "--split", "dev", "--option", "bogus=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown loader option 'bogus'" in err[0] and "label_list_column" in err[0]

    broken = tmp_path / "goemotions"
    broken.mkdir()
    (broken / "dev.tsv").write_bytes(b"fine text\t1\tid1\nbad \xff text\t2\tid2\n")
    assert main(["data", "describe", "goemotions", "--data-dir", str(broken), "--split", "dev"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{broken / 'dev.tsv'}, line 2: not UTF-8 text (byte 0xff" in err[0]

    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        from labeldist.cli import main
        sys.exit(main({[*_argv(base, out)]!r}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {out}/") and last.endswith(": File too large"), last
    assert "Traceback" not in done.stderr


def test_resume_follows_the_data_not_its_path(setup, tmp_path, capsys):
    """Case 8: a moved data folder resumes (the data is compared by content); the same path
    holding other data is refused, naming the digest."""
    import shutil

    _, base, data = setup
    out = tmp_path / "run"
    assert main([*_argv(base, out), "--limit", "3"]) == 0
    moved = tmp_path / "moved-data"
    shutil.copytree(data, moved)
    argv = list(base)
    argv[argv.index("--data-dir") + 1] = str(moved)
    capsys.readouterr()
    assert main(_argv(argv, out)) == 0
    assert "6 items recorded (3 now" in capsys.readouterr().err
    frame = (moved / "dev.csv").read_text().splitlines()
    frame[1] = frame[1].replace(",", ",Edited ", 1)  # the first text changed
    (moved / "dev.csv").write_text("\n".join(frame) + "\n")
    assert main(_argv(argv, out)) == 2
    err = capsys.readouterr().err
    assert "exists with a different config (data_sha256:" in err and "data_dir" not in err


def test_a_server_a_test_starts_dies_with_a_killed_pytest(tmp_path):
    """The servers the tests start (llama.cpp, vLLM) run in their own process group, so a pytest
    killed with SIGKILL would leave them running; conftest.die_with_pytest ties them to it. Here a
    stand-in for pytest starts a real HTTP server that way and is killed: the server goes too."""
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    starter = (
        "import subprocess, sys, time\n"
        f"sys.path.insert(0, {str(tests)!r})\n"
        "from conftest import die_with_pytest\n"
        "server = subprocess.Popen([sys.executable, '-m', 'http.server', '0', '--bind', '127.0.0.1'],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_pytest)\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    stand_in = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    server = int(stand_in.stdout.readline())
    os.kill(server, 0)  # running
    stand_in.send_signal(signal.SIGKILL)
    stand_in.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            return  # gone (reaped by init once it exited)
        with open(f"/proc/{server}/stat") as stat:
            if stat.read().split(") ")[1].startswith("Z"):  # exited, not yet reaped
                return
        time.sleep(0.1)
    os.kill(server, signal.SIGKILL)
    raise AssertionError("the server outlived the killed process that started it")
