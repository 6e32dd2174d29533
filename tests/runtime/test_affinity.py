"""Loop-affinity guard: silent on the bound thread, loud and immediate elsewhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from lean_p2p.runtime import affinity
from lean_p2p.runtime.affinity import LoopAffinity, WrongThreadError, loop_only


class Store:
    def __init__(self) -> None:
        self.affinity = LoopAffinity("fork-choice store", "Node.submit_threadsafe")
        self.value = 0

    @loop_only
    def bump(self, by: int) -> int:
        self.value += by
        return self.value


def call_in_thread(function: object) -> BaseException | None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            function()  # type: ignore[operator]
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target, name="foreign-thread")
    thread.start()
    thread.join()
    return errors[0] if errors else None


@pytest.fixture
def guard_enabled() -> Iterator[None]:
    before = affinity.affinity_enabled()
    affinity.set_enabled(True)
    yield
    affinity.set_enabled(before)


def test_the_bound_thread_passes_and_others_raise_naming_the_entry_point(
    guard_enabled: None,
) -> None:
    store = Store()
    store.affinity.bind()
    assert store.bump(2) == 2
    before = affinity.violation_count()
    error = call_in_thread(lambda: store.bump(1))
    assert isinstance(error, WrongThreadError)
    message = str(error)
    assert "fork-choice store" in message
    assert "Node.submit_threadsafe" in message
    assert "foreign-thread" in message
    assert store.value == 2  # the method body never ran
    assert affinity.violation_count() == before + 1


def test_an_unbound_guard_binds_to_its_first_caller(guard_enabled: None) -> None:
    store = Store()
    bound_before = store.affinity.bound
    assert call_in_thread(lambda: store.bump(1)) is None  # binds to the foreign thread
    assert (bound_before, store.affinity.bound) == (False, True)
    with pytest.raises(WrongThreadError):
        store.bump(1)


def test_the_switch_turns_the_check_off(guard_enabled: None) -> None:
    store = Store()
    store.affinity.bind()
    affinity.set_enabled(False)
    assert call_in_thread(lambda: store.bump(1)) is None
    assert store.value == 1


def test_loop_only_keeps_the_method_metadata() -> None:
    assert Store.bump.__name__ == "bump"
