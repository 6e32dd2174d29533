"""The loop-thread runtime: mailbox, loop-affinity guard, actors and timers."""

from lean_p2p.runtime.affinity import LoopAffinity, WrongThreadError, loop_only

__all__ = ["LoopAffinity", "WrongThreadError", "loop_only"]
