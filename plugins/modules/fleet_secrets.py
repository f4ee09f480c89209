#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_secrets
short_description: Generate, keep and check the secrets of a Dify fleet on the controller
version_added: "0.1.0"
author: difyops.fleet contributors (@difyops)
description:
  - Loads the fleet's secrets file (C(secrets/<inventory>.yml), a YAML file
    holding one mapping C(difyops_secrets)), generates only the keys that are
    missing, writes the file with mode 0600 and returns the complete dict.
  - A key that already has a value is never regenerated, except when named in
    O(rotate); then the previous file is kept as a 0600 backup first.
  - Refuses Dify's public sample values (C(difyai123456), C(dify-sandbox),
    the C(sk-9f73s3...) SECRET_KEY, the plugin daemon and inner API sample
    keys, the Weaviate sample key...) and weak values (too short, whitespace),
    naming the key and the fix.
  - An ansible-vault encrypted file is never written. Load it with
    M(ansible.builtin.include_vars) and pass its dict as O(secrets); when keys
    are missing the module fails, naming them and how to add them.
  - Without O(path) the module only checks O(secrets) (all required keys
    present, none weak or a sample value) and changes nothing.
  - "Run it on the controller (C(delegate_to: localhost), C(run_once: true))
    and set C(no_log: true) on the task: the result holds the secrets."
options:
  path:
    description:
      - Path of the secrets file on the controller. Must be absolute; resolve
        relative names in the playbook (C(playbooks/tiers/secrets.yml) resolves
        them against the directory of the C(ansible.cfg) in use).
      - Omit to only check O(secrets).
    type: path
  secrets:
    description:
      - Secrets already known, e.g. the C(difyops_secrets) mapping of an
        encrypted file loaded with M(ansible.builtin.include_vars), or set in
        the inventory.
      - For a plain file, keys given here that the file lacks are added to it;
        a key whose value differs from the file's is an error.
      - "Not marked C(no_log) on purpose (it would mask the returned dict too):
        the calling task must use C(no_log: true)."
    type: dict
    default: {}
  optional_keys:
    description:
      - Optional keys to generate as well when missing.
    type: list
    elements: str
    choices: [weaviate_api_key, qdrant_api_key, init_password, agent_api_token, agent_server_secret_key,
              agent_shellctl_token]
    default: []
  rotate:
    description:
      - Keys to replace with new random values. The previous file is copied to
        C(<path>.<UTC timestamp>.bak) (mode 0600) before it is rewritten.
      - C(pgbackrest_cipher_pass) is refused (existing backups depend on it).
      - Every consumer of a rotated key must then be re-deployed, see
        RV(rotation_tiers).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Can run in check mode; missing keys are then generated in memory only.
  diff_mode:
    support: full
    description: Shows the keys that change, never their values.
    details: The diff lists the keys with every value replaced by C(********), C(<generated>) or C(<rotated>).
notes:
  - Generated values are 32 to 64 random letters and digits from the
    operating system's CSPRNG (Python C(secrets)), safe in URLs, env files,
    redis.conf and SQL without quoting.
  - In check mode missing keys are generated in memory and returned, so the
    rest of a check run can render templates, but nothing is written.
"""

EXAMPLES = r"""
- name: Load an encrypted secrets file
  ansible.builtin.include_vars:
    file: "{{ secrets_file }}"
    name: __secrets_file
  when: secrets_file is file
  delegate_to: localhost
  run_once: true
  no_log: true

- name: Generate the missing secrets and keep the file
  difyops.fleet.fleet_secrets:
    path: /srv/fleet/secrets/prod.yml
    secrets: "{{ (__secrets_file | default({})).difyops_secrets | default({}) }}"
    optional_keys: [init_password]
  delegate_to: localhost
  run_once: true
  no_log: true
  register: __fleet_secrets

- name: Rotate the sandbox key (then re-deploy the dify tier)
  difyops.fleet.fleet_secrets:
    path: /srv/fleet/secrets/prod.yml
    rotate: [sandbox_api_key]
  delegate_to: localhost
  run_once: true
  no_log: true
"""

RETURN = r"""
secrets:
  description: The complete secrets dict. Keep the task C(no_log).
  returned: success
  type: dict
  sample: {secret_key: "********", db_password: "********"}
generated:
  description: Keys that were missing and got a new value.
  returned: always
  type: list
  elements: str
  sample: [init_password]
rotated:
  description: Keys that got a new value through O(rotate).
  returned: always
  type: list
  elements: str
rotation_tiers:
  description: Tags of C(playbooks/site.yml) to run so every consumer of a rotated key uses the new value.
  returned: always
  type: list
  elements: str
  sample: [postgresql, dify]
backup_file:
  description: Copy of the previous file, made before rotating.
  returned: when a backup was made
  type: str
encrypted:
  description: Whether the file is ansible-vault encrypted.
  returned: always
  type: bool
path:
  description: The secrets file.
  returned: when O(path) was given
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.difyops.fleet.plugins.module_utils.secrets import (
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    ROTATION_TIERS,
    SecretsError,
    backup_path,
    copy_private,
    find_problems,
    is_vault_file,
    masked_view,
    missing_keys,
    parse_file,
    plan,
    render_file,
    write_private,
)


def _fail(module, msg, **kwargs):
    module.fail_json(msg=msg, generated=[], rotated=[], rotation_tiers=[], **kwargs)


def run(module):
    path = module.params["path"]
    given = dict(module.params["secrets"] or {})
    wanted = list(REQUIRED_KEYS) + [k for k in OPTIONAL_KEYS if k in module.params["optional_keys"]]
    rotate = list(dict.fromkeys(module.params["rotate"]))
    result = dict(changed=False, generated=[], rotated=[], rotation_tiers=[], encrypted=False)

    # Check only: no file to keep values in, so nothing may be generated.
    if not path:
        if rotate:
            _fail(module, "rotate needs path: rotated values must be stored somewhere")
        missing = missing_keys(given, wanted)
        if missing:
            _fail(
                module,
                "difyops_secrets lacks %s; add them (random values, e.g. openssl rand -hex 24) "
                "or let playbooks/tiers/secrets.yml keep a secrets file" % ", ".join(missing),
            )
        problems = find_problems(given)
        if problems:
            _fail(module, "Refusing the fleet's secrets: " + "; ".join(problems))
        result["secrets"] = given
        return result

    if not os.path.isabs(path):
        _fail(module, "path must be absolute, got %r; resolve it against the project directory" % path)
    result["path"] = path
    exists = os.path.exists(path)
    encrypted = exists and is_vault_file(path)
    result["encrypted"] = encrypted

    on_disk = None
    if encrypted:
        existing = given
    elif exists:
        with open(path) as fh:
            on_disk = parse_file(fh.read(), path)
        existing = dict(on_disk)
        for key, value in given.items():
            if key in existing and existing[key] != value:
                _fail(
                    module,
                    "secrets.%s differs from the value in %s; the file is authoritative. Remove "
                    "difyops_secrets.%s from the inventory or put the same value in both" % (key, path, key),
                )
        existing.update({k: v for k, v in given.items() if k not in existing})
    else:
        existing = given

    if encrypted and rotate:
        _fail(
            module,
            "%s is encrypted with ansible-vault; it is never rewritten in plaintext. To rotate %s: "
            "ansible-vault decrypt %s, run again, then ansible-vault encrypt %s."
            % (path, ", ".join(rotate), path, path),
            path=path,
            encrypted=True,
        )

    problems = find_problems(existing)
    if problems:
        _fail(module, "Refusing the secrets in %s: %s" % (path, "; ".join(problems)))

    new, generated, rotated = plan(existing, wanted, rotate)
    result.update(generated=generated, rotated=rotated)
    result["rotation_tiers"] = sorted({t for k in rotated for t in ROTATION_TIERS.get(k, ())})

    if encrypted and (generated or rotated):
        what = generated + rotated
        _fail(
            module,
            "%s is encrypted with ansible-vault and would need %s (%s); it is never rewritten "
            "in plaintext. Either add the keys yourself (ansible-vault edit %s, random values of "
            "32+ letters and digits, e.g. openssl rand -hex 24), or decrypt it (ansible-vault "
            "decrypt %s), run again so they are generated, and encrypt it again (ansible-vault "
            "encrypt %s)." % (path, ", ".join(what), "missing" if generated else "rotate", path, path, path),
            path=path,
            encrypted=True,
            missing=generated,
        )

    file_differs = (not exists) or (not encrypted and new != on_disk)
    mode_wrong = exists and (os.stat(path).st_mode & 0o777) != 0o600

    if file_differs or mode_wrong:
        result["changed"] = True
    if module._diff and file_differs:
        before = masked_view(on_disk) if on_disk is not None else ""
        result["diff"] = dict(
            before_header=path,
            after_header=path,
            before=before,
            after=masked_view(new, generated, rotated),
        )

    if result["changed"] and not module.check_mode:
        if file_differs:
            if exists and rotated:
                result["backup_file"] = copy_private(path, backup_path(path))
            write_private(path, render_file(new))
        else:
            os.chmod(path, 0o600)
    result["secrets"] = new
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            secrets=dict(type="dict", default={}, no_log=False),
            optional_keys=dict(type="list", elements="str", default=[], choices=list(OPTIONAL_KEYS)),
            rotate=dict(type="list", elements="str", default=[], no_log=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except (SecretsError, OSError) as exc:
        _fail(module, str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
