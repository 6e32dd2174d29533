"""Flame graphs from py-spy's collapsed stacks: parsing, top functions, SVG, speedscope."""

from __future__ import annotations

from xml.etree import ElementTree

from lean_p2p.tools.flamegraph import (
    function_of,
    is_waiting,
    parse_collapsed,
    render_svg,
    thread_samples,
    to_speedscope,
    top_functions,
)

RAW = """\
thread (4242): MainThread;run (app.py:10);handle (node.py:20);decode (codec.py:5) 60
thread (4242): MainThread;run (app.py:10);handle (node.py:21) 30
thread (4242): MainThread;run (app.py:10);handle (node.py:20);decode (codec.py:6) 10
thread (0x10): driver:x;main (driver.py:1);EpollIOManager.get_events (trio/_core/_io_epoll.py:9) 50
thread (0x10): driver:x;main (driver.py:1);receive (quic.py:3) 20
not a stack line
"""


def test_py_spy_lines_parse_with_decimal_or_hex_thread_ids() -> None:
    stacks = parse_collapsed(RAW)
    assert len(stacks) == 5
    assert stacks[0].thread_id == 4242
    assert stacks[0].thread_name == "MainThread"
    assert stacks[0].frames[-1] == "decode (codec.py:5)"
    assert stacks[3].thread_id == 16
    assert stacks[3].thread == "driver:x (16)"
    assert thread_samples(stacks) == {4242: 100, 16: 70}


def test_top_functions_merge_lines_of_one_function_and_rank_by_own_samples() -> None:
    stacks = parse_collapsed(RAW)
    top = top_functions(stacks, 4242)
    assert [entry["function"] for entry in top] == ["decode (codec.py)", "handle (node.py)"]
    assert top[0]["own_pct"] == 70.0
    assert top[0]["total_pct"] == 70.0
    assert top[1]["own_pct"] == 30.0
    assert top[1]["total_pct"] == 100.0


def test_waiting_functions_can_be_left_out_of_the_top() -> None:
    stacks = parse_collapsed(RAW)
    everything = top_functions(stacks, 16)
    assert everything[0]["function"] == "EpollIOManager.get_events (trio/_core/_io_epoll.py)"
    working = top_functions(stacks, 16, skip_waiting=True)
    assert [entry["function"] for entry in working] == ["receive (quic.py)"]
    assert working[0]["own_pct"] == 100 * 20 / 70  # the wait still counts in the total


def test_waiting_is_known_by_method_name_and_file() -> None:
    assert is_waiting("EpollIOManager.get_events (trio/_core/_io_epoll.py)")
    assert is_waiting("Condition.wait (threading.py)")
    assert is_waiting("Runner.run (asyncio/runners.py)")
    assert not is_waiting("wait (my_module.py)")
    assert not is_waiting("decode (codec.py)")


def test_no_samples_of_a_thread_give_no_functions() -> None:
    assert top_functions(parse_collapsed(RAW), 999) == []
    assert function_of("not a frame") == "not a frame"


def test_the_svg_is_well_formed_with_one_titled_frame_per_node() -> None:
    stacks = parse_collapsed(RAW)
    svg = render_svg(stacks, "a <title> & more")
    root = ElementTree.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    titles = [element.text or "" for element in root.iter(f"{namespace}title")]
    # all, 2 threads, and every distinct frame path below them
    assert len(titles) == 1 + 2 + 5 + 3
    assert titles[0].startswith("all (170 samples, 100.0%)")
    assert any(title.startswith("decode (codec.py:5) (60 samples") for title in titles)
    assert len(list(root.iter(f"{namespace}rect"))) == len(titles)


def test_speedscope_has_one_sampled_profile_per_thread_over_shared_frames() -> None:
    document = to_speedscope(parse_collapsed(RAW), "test")
    frames = document["shared"]["frames"]
    assert {"name": "decode", "file": "codec.py", "line": 5} in frames
    profiles = {profile["name"]: profile for profile in document["profiles"]}
    assert set(profiles) == {"MainThread (4242)", "driver:x (16)"}
    main = profiles["MainThread (4242)"]
    assert main["type"] == "sampled"
    assert main["endValue"] == sum(main["weights"]) == 100
    for sample in main["samples"]:
        assert all(0 <= index < len(frames) for index in sample)
    names = [frames[index]["name"] for index in main["samples"][0]]
    assert names == ["run", "handle", "decode"]
