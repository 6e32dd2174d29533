"""What a user runs: devnets, stress runs, benchmarks, profiling, spec vectors, interop.

The library packages (``runtime``, ``native``, ``wire``, ``containers``, ``consensus``,
``net``, ``driver``, ``p2p``, ``node``) hold what an embedder imports. This package
holds the work the ``lean-p2p`` commands start, and the harnesses it needs: load
generators, simulated networks, in-memory chains and native producer drivers. It may
import any library package; no library package imports it (``tests/test_layering.py``
checks both). The command line itself (argument parsing and output) is
:mod:`lean_p2p.cli`.

Each tool runs on its command's main thread and starts the threads and processes its
scenario needs; its module docstring says which.

- ``bench/``            ``lean-p2p bench NAME``: side-by-side benchmarks, a table and JSON
- ``devnet``            ``lean-p2p devnet``: N node processes on loopback, live progress
                        (``--leanspec K``: leanSpec's nodes beside ours on one genesis)
- ``leanspec``          leanSpec's node as a devnet member: its venv, processes, answers
- ``soak``              ``lean-p2p soak``: a long devnet with a kill, a pause and chaos
- ``faultnet``          faults on purpose: a UDP relay per pair of devnet nodes with
                        delay, loss, reordering, duplication, a bandwidth cap, partitions
- ``scenario``          ``lean-p2p devnet --scenario FILE``: a devnet through a timeline
                        of faults (``scenarios/*.yaml``), its expectations checked
- ``crashtest``         ``lean-p2p crashtest``: a node process SIGKILLed during import,
                        every restart from its database checked
- ``profile``           ``lean-p2p profile``: a node under synthetic load
- ``profile_network``   ``lean-p2p profile --network``: a node over real sockets, a rate
                        ramp to saturation, the verdict
- ``profile_report``    its self-contained HTML report
- ``loadgen``           its load generator: a lean node in another process
- ``flamegraph``        py-spy's stacks as an SVG flame graph and a speedscope file
- ``stress``            ``lean-p2p stress``: the mailbox's exactly-once check at scale
- ``native_stress``     the same with native C producer threads
- ``native_producers``  the C producer driver (``bindings/testing/``) over ctypes
- ``spectest/``         ``lean-p2p spectest``: leanSpec fixture vectors, one plug-in a format
- ``interop``           ``lean-p2p interop``: our driver against leanSpec's node
- ``simulation``        several P2P cores over a simulated network, with chaos
- ``memory_chain``      an in-memory chain behind :class:`lean_p2p.p2p.ChainReader`
- ``report``            the shared table and JSON output
- ``running``           a command's loop: uvloop, signal handlers, logging
"""
