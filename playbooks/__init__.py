"""Marks this folder as the package `provisioner.playbooks` for the wheel (pyproject.toml maps it here).

Ansible ignores this file: the playbooks and roles beside it are ordinary Ansible content, run by `provision` through
ansible-runner or directly with `ansible-playbook -i <inventory> playbooks/<x>.yml`.
"""
