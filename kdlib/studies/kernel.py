"""The Jupyter kernel kdlib executes notebooks in (``kdlib grid``, the tests): local IPC sockets instead of TCP.

papermill starts each notebook's kernel on this machine only, so the kernel needs no network port: with IPC
transport the kernel talks over local socket files and ipykernel prints no "Kernel is running over TCP without
encryption" warning into every executed notebook and log.
"""
from __future__ import annotations

import os
from typing import Any


def ipc_kernel_manager() -> Any:
    """A jupyter_client kernel manager class whose kernels use IPC transport (for ``kernel_manager_class=``)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _ipc(self) -> str:
            return "ipc"

        @default("ip")
        def _socket_prefix(self) -> str:
            # IPC "ports" are numbered files next to this prefix (removed with the kernel): a unique prefix per
            # kernel, so kernels started at the same time (kdlib grid --jobs) or one after another never share one
            import tempfile
            import uuid

            return os.path.join(tempfile.gettempdir(), f"kdlib-kernel-{uuid.uuid4().hex}")

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts the kernel before every shutdown request; a kernel still busy with its
            # last reply then logs "ERROR | KeyboardInterrupt caught in kernel." into the grid's output, though
            # the notebook had finished. A finished notebook's kernel needs no interrupt: the shutdown request
            # (then SIGTERM, SIGKILL) stops it. Interrupts at any other time are sent as before.
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    return IPCKernelManager


__all__ = ["ipc_kernel_manager"]
