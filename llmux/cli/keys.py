"""``llmux keys add|list|remove``: manage the API keys in ``api_keys.yaml``."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "keys", help="add, list or remove API keys",
        description="Manage api_keys.yaml: one key per client, written atomically, mode 0600.",
    )
    actions = p.add_subparsers(dest="keys_command", metavar="ACTION")
    add = actions.add_parser("add", help="generate a new key and print it once")
    add.add_argument("name", help="the client, e.g. open-webui")
    add.add_argument("--admin", action="store_true",
                     help="allow this key to use the admin routes (load/unload models)")
    listing = actions.add_parser("list", help="show key names and admin flags, never secrets")
    remove = actions.add_parser("remove", help="delete a key (the client loses access)")
    remove.add_argument("name")
    for parser in (p, add, listing, remove):
        # SUPPRESS: a value given before the action is not overwritten by the default.
        parser.add_argument("--config", metavar="DIR", default=argparse.SUPPRESS,
                            help="config directory (default: $LLMUX_CONFIG_DIR, then ./config)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import resolve_config_dir
    from ..keys import KeyFileError, add_key, keys_path, list_keys, remove_key

    path = keys_path(resolve_config_dir(getattr(args, "config", None)))
    action = getattr(args, "keys_command", None)
    try:
        if action == "add":
            key = add_key(path, args.name, admin=args.admin)
            role = "admin key" if args.admin else "key"
            print(f"Added {role} {args.name!r} to {path} (mode 0600). It is shown only now: "
                  "put it into the client's settings.", file=sys.stderr)
            print(key)
            return 0
        if action == "list":
            infos = list_keys(path)
            if not infos:
                print(f"no keys in {path}; add one with `llmux keys add NAME`", file=sys.stderr)
                return 0
            width = max(len(i.name) for i in infos)
            for info in infos:
                print(f"{info.name:<{width}}  {'admin' if info.admin else '-'}")
            return 0
        if action == "remove":
            remove_key(path, args.name)
            print(f"Removed key {args.name!r} from {path}. Restart llmux to apply "
                  "(systemctl --user restart pod-llmux_pod.service).", file=sys.stderr)
            return 0
    except KeyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("usage: llmux keys {add NAME [--admin] | list | remove NAME} [--config DIR]",
          file=sys.stderr)
    return 2
