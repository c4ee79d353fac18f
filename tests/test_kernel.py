"""The grid's kernel manager: IPC transport, and no interrupt sent to a kernel that is being shut down."""
import asyncio

from jupyter_client.manager import AsyncKernelManager

from kdlib.studies.kernel import ipc_kernel_manager


def test_ipc_transport_and_unique_prefix():
    cls = ipc_kernel_manager()
    a, b = cls(), cls()
    assert a.transport == "ipc" and "kdlib-kernel-" in a.ip
    assert a.ip != b.ip


def test_no_interrupt_during_shutdown_but_otherwise_passed_on(monkeypatch):
    sent = []

    async def parent_interrupt(self):
        sent.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", parent_interrupt)
    manager = ipc_kernel_manager()()
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())
    assert sent == []
    manager.shutting_down = False
    asyncio.run(manager._async_interrupt_kernel())
    assert sent == [False]
