"""Test-only Ansible callback: press Ctrl-C on the provision command right after a chosen task changed a chosen host.

Enabled only by the lab test that needs it (ANSIBLE_CALLBACK_PLUGINS / ANSIBLE_CALLBACKS_ENABLED in that test's
environment; ansible-runner keeps both). It sends SIGINT to the provision command's process group, as a terminal
does, then holds Ansible where it is until the command cancels the run, so the interruption always lands between
the chosen task and the next one, never later by chance.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_interrupt"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_on_ok(self, result: Any) -> None:
        task = os.environ.get("LAB_INTERRUPT_TASK", "")
        host = os.environ.get("LAB_INTERRUPT_HOST", "")
        if not task:
            return
        name = result._task.get_name()
        if (name == task or name.endswith(" : " + task)) and result._host.get_name() == host \
                and result._result.get("changed"):
            # ansible-runner started this ansible-playbook from the provision process: interrupt that one's group.
            os.killpg(os.getpgid(os.getppid()), signal.SIGINT)
            time.sleep(120)
