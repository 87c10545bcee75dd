"""Plays run on their hosts in inventory order, so a rolling restart or a one-at-a-time join goes s1, s2, s3.

A group built with group_by gets its hosts in the order their results arrive (Ansible adds each host when its task
returns), so a `serial: 1` play over such a group could restart s3 before s2 (seen in CI). Groups the plays run on
are built with add_host looping over the play's hosts, which keeps inventory order.
"""

from __future__ import annotations

import pytest

from tests.playbook_code import iter_tasks

pytestmark = pytest.mark.unit


def test_no_group_is_built_in_result_arrival_order() -> None:
    offenders = [f"{path.name}: {task.get('name')!r}" for path, task in iter_tasks()
                 if "group_by" in task or "ansible.builtin.group_by" in task]
    assert offenders == [], "use add_host over ansible_play_hosts (inventory order) instead of group_by"
