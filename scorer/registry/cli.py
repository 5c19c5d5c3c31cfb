"""``tablescore registry ...``: publish, promote, roll back and inspect models in a registry.

Every subcommand takes ``--store URL`` (default ``$TABLESCORE_STORE``); ``--json`` prints
machine-readable output. ``publish`` prints the version number alone on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InputError


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[Any]:
    """The registry of ``--store``, closed when the command is done with it."""
    from . import open_store

    if not args.store:
        raise InputError("no registry: give --store URL or set TABLESCORE_STORE")
    store = open_store(args.store)
    try:
        yield store
    finally:
        store.close()


def _print(args: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True) if args.json else text)


def cmd_publish(args: argparse.Namespace) -> int:
    with _store(args) as store:
        from .store import bundle_files, check_alias, check_model_name

        check_model_name(args.model)
        if args.alias is not None:
            check_alias(args.alias)
        sample = None
        if args.sample:
            from ..files import read_table

            sample = read_table(args.sample)
        fingerprint, files = bundle_files(args.path, sample=sample, drift_bins=args.drift_bins)
        version = store.publish_files(fingerprint, files, args.model, alias=args.alias)
    alias = f", alias {args.alias}" if args.alias else ""
    print(f"published {args.path} as model {args.model} version {version}{alias} "
          f"(fingerprint {fingerprint[:16]})", file=sys.stderr)
    print(version)
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    with _store(args) as store:
        previous = store.set_alias(args.name, args.alias, args.version)
    was = f" (was version {previous})" if previous else ""
    print(f"model {args.name} alias {args.alias} -> version {int(args.version)}{was}")
    return 0


def cmd_unalias(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.remove_alias(args.name, args.alias)
    print(f"model {args.name}: alias {args.alias} removed")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        snap = store.snapshot()
    models = {name: {"versions": sorted(m.versions), "aliases": m.aliases,
                     "served": m.served(), "latest": m.latest}
              for name, m in sorted(snap.models.items())}
    lines = [f"{n:24s} versions {','.join(map(str, d['versions']))}  served "
             f"{','.join(map(str, d['served']))}  "
             + " ".join(f"{a}={v}" for a, v in sorted(d["aliases"].items()))
             for n, d in models.items()]
    _print(args, {"last_event": snap.last_event, "models": models},
           "\n".join(lines) or "(no models)")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = store.versions(args.name)
    text = "\n".join(
        f"{r['version']:>5}  {r['fingerprint'][:16]}  {r['bytes']:>12,} B  "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['published_at']))}Z  "
        f"{' '.join(r['aliases'])}" for r in rows)
    _print(args, rows, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = store.versions(args.name)
        replicas = store.replicas()
    serving = {r["replica"]: {"seen_seconds_ago": r["seen_seconds_ago"],
                              **r["serving"].get(args.name, {})} for r in replicas}
    obj = {"model": args.name, "versions": rows, "replicas": serving}
    lines = [f"model {args.name}"]
    lines += [f"  version {r['version']} {r['fingerprint'][:16]} {' '.join(r['aliases'])}"
              for r in rows]
    lines += [f"  replica {rid}: ready {','.join(s.get('ready', [])) or '-'} (seen "
              f"{s['seen_seconds_ago']:.1f} s ago)"
              + "".join(f"; version {v}: {why}" for v, why in s.get("reasons", {}).items())
              for rid, s in sorted(serving.items())]
    _print(args, obj, "\n".join(lines))
    return 0


def cmd_replicas(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = store.replicas()
    text = "\n".join(
        f"{r['replica']:32s} last event {r['last_event']}, seen {r['seen_seconds_ago']:.1f} s "
        "ago: " + ", ".join(f"{m} {','.join(s.get('ready', [])) or '-'}"
                            for m, s in sorted(r["serving"].items()))
        for r in rows)
    _print(args, rows, text or "(no replicas have reported)")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.delete(args.name, args.version)
    print(f"model {args.name} version {int(args.version)} deleted")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    if (args.config is None) == (not args.end):
        raise InputError("give --config FILE (start or change) or --end")
    experiment = None
    if args.config is not None:
        with open(args.config, encoding="utf-8") as fh:
            try:
                experiment = json.load(fh)
            except ValueError as exc:
                raise InputError(f"--config {args.config}: not JSON ({exc})") from None
        if isinstance(experiment, dict) and "experiment" in experiment:
            experiment = experiment["experiment"]  # a whole config.json is fine too
    with _store(args) as store:
        store.set_experiment(args.name, experiment)
    print(f"model {args.name}: experiment "
          + ("ended" if experiment is None else f"'{experiment.get('name')}' set"))
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.set_latest(args.name, args.latest)
    print(f"model {args.name}: replicas serve the newest {args.latest} version(s) and every "
          "aliased one")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``registry`` and its subcommands to the ``tablescore`` parser."""
    r = sub.add_parser("registry", help="publish, promote, roll back and inspect models in a "
                       "registry shared by replicas (docs/operations.md)")
    rs = r.add_subparsers(dest="registry_command", required=True)

    def cmd(name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        p = rs.add_parser(name, help=help)
        p.add_argument("--store", default=os.environ.get("TABLESCORE_STORE"),
                       help="registry URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
                            "(default $TABLESCORE_STORE)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(fn=fn)
        return p

    p = cmd("publish", cmd_publish, "verify a bundle or PMML document and publish it as the "
            "next version (prints the version number last)")
    p.add_argument("path")
    p.add_argument("--model", required=True)
    p.add_argument("--alias", default=None, help="also point this alias at the version")
    from ..monitoring.options import add_sample_arguments

    add_sample_arguments(p)  # a bundle's own profile is replaced by the sample's
    p = cmd("alias", cmd_alias, "point an alias at a version (a rollback is this)")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version")
    p = cmd("unalias", cmd_unalias, "remove an alias")
    p.add_argument("name")
    p.add_argument("alias")
    cmd("list", cmd_list, "models, their versions, aliases and what replicas serve")
    p = cmd("versions", cmd_versions, "a model's versions")
    p.add_argument("name")
    p = cmd("show", cmd_show, "a model's versions and which replica serves which")
    p.add_argument("name")
    cmd("replicas", cmd_replicas, "replicas that reported in, and what each serves")
    p = cmd("delete", cmd_delete, "delete a version (refused while an alias names it)")
    p.add_argument("name")
    p.add_argument("version")
    p = cmd("experiment", cmd_experiment, "start, change or end a model's A/B experiment "
            "(docs/experiments.md); replicas apply it")
    p.add_argument("name")
    p.add_argument("--config", default=None, help="JSON file: the experiment object")
    p.add_argument("--end", action="store_true", help="end the experiment")
    p = cmd("policy", cmd_policy, "how many of the newest versions replicas serve")
    p.add_argument("name")
    p.add_argument("--latest", type=int, required=True)
