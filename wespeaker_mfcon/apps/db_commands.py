"""The speaker-database subcommands of `wespeaker-mfcon` (apps/cli.py): enroll, identify, db.

  enroll   --model M --db DB --speaker NAME a.wav [b.wav ...]   (creates DB when new)
  identify --model M --db DB x.wav [--top_k 5] [--p_target P] [--threshold T] [--search S]
           [--expansion N]
  db list --db DB [--paths] | db remove --db DB NAME ... | db reenroll --model M --db DB --out NEW
  | db index --db DB
"""

import time

from wespeaker_mfcon.apps.embedder import load_model
from wespeaker_mfcon.apps.identification import Identifier, reenroll
from wespeaker_mfcon.apps.search import EXPANSION_SEARCH, METHODS, SpeakerSearch
from wespeaker_mfcon.apps.speaker_db import SpeakerDB

COMMANDS = ("enroll", "identify", "db")


def add_commands(sub, add_model_options, add_decision_options):
    """Add the subcommands to an argparse subparsers object."""
    enroll = sub.add_parser("enroll", help="add wavs of one speaker to a speaker database")
    enroll.add_argument("--speaker", required=True, help="the speaker's name (no spaces)")
    enroll.add_argument("wavs", nargs="+")
    identify = sub.add_parser("identify", help="who of the enrolled speakers is this?")
    identify.add_argument("wav")
    identify.add_argument("--top_k", type=int, default=5, help="candidates to show (default 5)")
    identify.add_argument("--search", choices=METHODS, default="auto",
                          help="exact, through the index, or auto: the index from the size "
                               "where it pays (default)")
    identify.add_argument("--expansion", type=int, default=EXPANSION_SEARCH,
                          help="the index's search breadth: more finds the best speaker more "
                               f"often, slower (default {EXPANSION_SEARCH})")
    add_decision_options(identify)
    db = sub.add_parser("db", help="list, remove, re-enroll or index a speaker database")
    actions = db.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per speaker: name, enrollments")
    listing.add_argument("--paths", action="store_true",
                         help="one line per enrollment instead: name, source path")
    remove = actions.add_parser("remove", help="remove speakers (all or none)")
    remove.add_argument("names", nargs="+")
    again = actions.add_parser("reenroll", help="embed the stored source audio again with "
                                                "another model, into a new database")
    again.add_argument("--out", required=True, help="the new database (must not exist)")
    index = actions.add_parser("index", help="build or update the search index file now")
    for p in (enroll, identify, again):
        add_model_options(p)
    for p in (enroll, identify, listing, remove, again, index):
        p.add_argument("--db", required=True, help="the speaker database (an SQLite file)")


def run(args):
    if args.command == "enroll":
        with Identifier(load_model(args.model, args.device), args.db, create=True) as ident:
            info = ident.enroll(args.speaker, args.wavs)
        print(f"enrolled {info.name}: {info.count} enrollment(s) in {args.db}")
    elif args.command == "identify":
        with Identifier(load_model(args.model, args.device), args.db, search=args.search,
                        expansion_search=args.expansion) as ident:
            print(ident.identify(args.wav, args.top_k, args.p_target, args.threshold))
    elif args.action == "reenroll":
        infos = reenroll(load_model(args.model, args.device), args.db, args.out)
        print(f"re-enrolled {len(infos)} speaker(s) from {args.db} into {args.out}")
    else:
        with SpeakerDB(args.db) as db:
            {"list": list_db, "remove": remove_from_db, "index": index_db}[args.action](db, args)


def list_db(db, args):
    print(f"# {db.path}: {len(db)} speakers, {db.dim or '?'} dims, model "
          f"{db.meta['model_hash'][:12]} ({db.meta['model_path']})")
    if args.paths:
        for name, path, _ in db.enrollments():
            print(name, path)
    else:
        for info in db.speakers():
            print(info.name, info.count)


def remove_from_db(db, args):
    print(f"removed {db.remove(args.names)} speaker(s) from {args.db}")


def index_db(db, args):
    start = time.time()
    SpeakerSearch(db, "index").save_index()
    print(f"index of {len(db)} speakers at generation {db.generation()} saved beside "
          f"{args.db} in {time.time() - start:.1f} s")
