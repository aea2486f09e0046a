"""Rebuild the outside-source training files (`nlu/data/en_hwu64.yml`, `en_snips.yml`,
`en_banking77.yml`, `en_sgd.yml`, `en_taskmaster.yml`, `de_xsid.yml`, `en_nlupp.yml`) from local git
mirrors of the public datasets, relabelled into our intents.

    python -m nlu.tools.import_outside --hwu64 PATH.git --snips PATH.git --banking77 PATH.git --sgd PATH.git \
        --taskmaster PATH.git --xsid PATH.git --nlupp PATH.git

Each PATH is a git directory (a bare clone) of the source repository; the commit read is HEAD,
printed into the file header. Nothing is downloaded here. The relabelling rules are the tables
below and are described in `nlu/data/SOURCES.md`; a line is dropped (not relabelled) when the rule
says so, when it mentions a delivery word (`DOMAIN_WORDS`: such a line, out of its context, may
well be a request for us) or when it is (folded) a line of nlu/evaluation/heldout, dev or dev2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import subprocess
from collections import defaultdict
from pathlib import Path

from nlu.embedded.features import fold
from nlu.evaluate import load_examples
from nlu.training_data import DATA_DIR

EVALUATION = Path(__file__).resolve().parents[1] / "evaluation"

# HWU64 (NLU-Evaluation-Data): intent -> our intent, None = dropped; unlisted = out_of_scope
HWU64_LABELS: dict[str, str | None] = {
    "general_affirm": "affirm",        # "yeah exactly", "it's right"
    "general_negate": "deny",          # "no, that's not what I wanted"
    "general_praise": "thanks",        # "well done, thank you so much"
    "general_explain": "help",         # "I don't get your last sentence" (confusion is help for us)
    "general_confirm": None,           # "check and confirm that": neither affirm nor a request of ours
    "general_repeat": None,            # "say that again": no such intent; not out of scope either
    "general_dontcare": None,          # "anything is fine": an answer, not a request
    "general_commandstop": None,       # "stop", "shut up", "talk to you later": STOP is opt_out for us
    "takeaway_query": None,            # "check the status of my order": could be ours
}
HWU64_SAMPLE = 5000  # of 11 036 lines (training time: the whole set doubled it)
# SNIPS 2017 custom-intent engines: seven assistant intents, all out of scope for us
SNIPS_PER_INTENT = 120
# Banking77: every category is out of scope, except those about a card's delivery (dropped)
BANKING77_DROPPED = {"card_arrival", "card_delivery_estimate", "change_pin"}
BANKING77_PER_CATEGORY = 20

# Schema-Guided Dialogue: user turns of the train dialogues. A first turn that states an intent
# ("I'd like to find a place to eat") is out_of_scope; a turn whose only dialogue act is one of
# these is the intent on the right; every other turn is dropped (mixed acts, slot values).
SGD_SINGLE_ACTS = {"THANK_YOU": "thanks", "GOODBYE": "goodbye", "AFFIRM": "affirm", "AFFIRM_INTENT": "affirm",
                   "NEGATE": "deny", "NEGATE_INTENT": "deny"}
SGD_OUT_OF_SCOPE = 1500
SGD_PER_INTENT = 150

# Taskmaster-4 (coffee ordering self-dialogs): a dialogue's first user turn (an order for a drink)
# is out_of_scope; a later user turn that only confirms the order read back to them (8 words at most,
# matching TASKMASTER_CONFIRM and not TASKMASTER_NOT_CONFIRM) is affirm; every other turn is dropped
# (its refusals nearly all carry a new request: "No, can I get it decaf?").
TASKMASTER_OUT_OF_SCOPE = 500
TASKMASTER_AFFIRM = 250
TASKMASTER_CONFIRM = re.compile(
    r"^(yes|yeah|yep|yup|ya|correct|perfect|exactly|absolutely|definitely|sure|great|right|that'?s (right|correct|it|"
    r"perfect|great|accurate|all)|that is (right|correct|it|all)|looks|sounds|everything|all good|it'?s (correct|"
    r"accurate|right|fine|perfect|good|all good)|it is (correct|accurate|right)|you got it|you'?ve got it)\b", re.I)
TASKMASTER_NOT_CONFIRM = re.compile(r"\?|\b(no|not|n't|but|change|instead|add|make it|actually|wait|remove)\b", re.I)
# xSID (German, professional translations of English assistant queries): every intent is out_of_scope
XSID_FILES = ("data/xSID-0.4/de.valid.conll", "data/xSID-0.4/de.test.conll")

# NLU++ (PolyAI, banking and hotels, multi-label): an example whose intents are exactly one of these
# general ones is that intent of ours; one with a banking or hotel intent (a booking, a card, a
# transfer, the spa...) is out_of_scope, except the `arrival` of something (a card, a transfer: could
# be ours); every other example is dropped: slot-only answers ("today", "for Jodie"), bare general
# intents that could be a request of ours ("I wanted to change the time", "when will I get there?").
NLUPP_LABELS: dict[frozenset[str], str] = {
    frozenset({"greet"}): "greet",
    frozenset({"thank"}): "thanks",
    frozenset({"end_call"}): "goodbye",
    frozenset({"acknowledge", "end_call"}): "goodbye",   # "ok, bye"
    frozenset({"affirm"}): "affirm",
    frozenset({"deny"}): "deny",
    frozenset({"handoff"}): "human_handoff",
    frozenset({"deny", "handoff"}): "human_handoff",     # "No, I want to speak to a normal person."
    frozenset({"handoff", "wrong_notworking_notshowing"}): "human_handoff",  # "this is not working, let me talk to a person"
}
NLUPP_DROPPED_DOMAIN = {"arrival"}
NLUPP_OUT_OF_SCOPE = 1200
# an answer that carries a value, a date or a new request is not a bare yes/no/thanks/bye ("Yes, from 25 past 23 on",
# "that doesn't work for me, how about November the 12th?"; "No, I need it on Tuesday" would be a
# new date for us, not a bare no)
NLUPP_NOT_BARE = re.compile(
    r"\d|\?|\b(how about|what about|instead|make it|need it|today|tonight|tomorrow|week|month|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|name)\b", re.I)
# NLU++ labels some refusals of a transfer as handoff ("No, you don't need to transfer me to a real person")
NLUPP_NOT_HANDOFF = re.compile(r"\b(don'?t|do not|doesn'?t)( need to)? (transfer|put me through)\b", re.I)

DOMAIN_WORDS = re.compile(
    r"\b(deliver\w*|parcel\w*|package\w*|shipment\w*|ship|ships|shipped|shipping|courier\w*|track\w*|"
    r"address\w*|orders?|ordered|arriv\w*|driver\w*|post ?code|zip ?code|postal|mail ?box|neighbou?r\w*|"
    r"dispatch\w*|receipt|refund\w*|"
    # German, for xSID
    r"liefer\w*|paket\w*|sendung\w*|bestell\w*|adresse\w*|zustell\w*|kurier\w*|versand\w*|fahrer\w*|"
    r"postleitzahl\w*|nachbar\w*)\b", re.IGNORECASE)


def git_show(git_dir: str, path: str) -> str:
    raw = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True,
                         capture_output=True).stdout
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # two SNIPS files are Latin-1
        return raw.decode("latin-1")


def git_head(git_dir: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def git_files(git_dir: str) -> list[str]:
    return subprocess.run(["git", f"--git-dir={git_dir}", "ls-tree", "-r", "--name-only", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.split("\n")


def hwu64(git_dir: str) -> list[tuple[str, str]]:
    """(text, our intent) from the annotated test folds of the 10-fold split (together: all of it)."""
    rows: set[tuple[str, str]] = set()
    for name in git_files(git_dir):
        if "/testset/annotated/" in name and name.endswith(".json"):
            for items in json.loads(git_show(git_dir, name)).values():
                for item in items:
                    rows.add((item["text"].strip(), item["intent"]))
    out = []
    for text, intent in sorted(rows):
        label = HWU64_LABELS.get(intent, "out_of_scope")
        if label is not None:
            out.append((text, label))
    return random.Random(64).sample(out, min(HWU64_SAMPLE, len(out)))


def snips(git_dir: str) -> list[tuple[str, str]]:
    out = []
    for name in git_files(git_dir):
        if name.startswith("2017-06-custom-intent-engines/") and "/train_" in name and name.endswith("_full.json"):
            for intent, items in json.loads(git_show(git_dir, name)).items():
                texts = sorted({"".join(part["text"] for part in item["data"]).strip() for item in items})
                out += [(t, "out_of_scope") for t in random.Random(intent).sample(texts, SNIPS_PER_INTENT)]
    return out


def banking77(git_dir: str) -> list[tuple[str, str]]:
    by_category: dict[str, list[str]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(git_show(git_dir, "banking_data/train.csv"))):
        if row["category"] not in BANKING77_DROPPED:
            by_category[row["category"]].append(row["text"].strip())
    out = []
    for category, texts in sorted(by_category.items()):
        texts = sorted(set(texts))
        out += [(t, "out_of_scope") for t in random.Random(category).sample(texts, min(BANKING77_PER_CATEGORY, len(texts)))]
    return out


def sgd(git_dir: str) -> list[tuple[str, str]]:
    first: list[str] = []
    single: dict[str, list[str]] = defaultdict(list)
    for name in git_files(git_dir):
        if not (name.startswith("train/dialogues_") and name.endswith(".json")):
            continue
        try:
            dialogues = json.loads(git_show(git_dir, name))
        except subprocess.CalledProcessError:  # a file the mirror does not hold (large objects)
            continue
        for dialogue in dialogues:
            for n, turn in enumerate(dialogue["turns"]):
                if turn["speaker"] != "USER":
                    continue
                acts = {a["act"] for frame in turn["frames"] for a in frame["actions"]}
                if n == 0 and "INFORM_INTENT" in acts:
                    first.append(turn["utterance"].strip())
                elif len(acts) == 1 and next(iter(acts)) in SGD_SINGLE_ACTS:
                    single[SGD_SINGLE_ACTS[next(iter(acts))]].append(turn["utterance"].strip())
    rng = random.Random(8)
    first = sorted(set(first))
    out = [(t, "out_of_scope") for t in rng.sample(first, min(SGD_OUT_OF_SCOPE, len(first)))]
    for intent, texts in sorted(single.items()):
        texts = sorted(set(texts))
        out += [(t, intent) for t in rng.sample(texts, min(SGD_PER_INTENT, len(texts)))]
    return out


def taskmaster(git_dir: str) -> list[tuple[str, str]]:
    """Taskmaster-4 (TM-4-2024/data/*.json): first user turns out_of_scope, bare confirmations affirm."""
    first: list[str] = []
    affirm: list[str] = []
    for name in git_files(git_dir):
        if not (name.startswith("TM-4-2024/data/") and name.endswith(".json")):
            continue
        for dialogue in json.loads(git_show(git_dir, name)):
            turns = [u["text"].strip() for u in dialogue["utterances"] if u["speaker"] == "user"]
            if turns:
                first.append(turns[0])
            for text in turns[1:]:
                if (len(text.split()) <= 8 and TASKMASTER_CONFIRM.search(text)
                        and not TASKMASTER_NOT_CONFIRM.search(text)):
                    affirm.append(text)
    rng = random.Random(4)
    out = []
    for texts, intent, n in ((first, "out_of_scope", TASKMASTER_OUT_OF_SCOPE), (affirm, "affirm", TASKMASTER_AFFIRM)):
        texts = sorted({t for t in texts if not (intent == "out_of_scope" and DOMAIN_WORDS.search(t))})
        out += [(t, intent) for t in rng.sample(texts, min(n, len(texts)))]
    return out


def xsid(git_dir: str) -> list[tuple[str, str]]:
    """xSID German: the `# text:` line of every sentence of the dev and test files, out_of_scope."""
    out = []
    for name in XSID_FILES:
        for line in git_show(git_dir, name).splitlines():
            if line.startswith("# text: "):
                text = re.sub(r"\s+([.,?!])", r"\1", line[len("# text: "):].strip())  # tokenised: "buchen ."
                out.append((text, "out_of_scope"))
    return out


def nlupp(git_dir: str) -> list[tuple[str, str]]:
    """NLU++ (nlupp/data/{banking,hotels}/fold*.json, all 20 folds of each domain)."""
    ontology = json.loads(git_show(git_dir, "nlupp/data/ontology.json"))["intents"]
    general = {name for name, info in ontology.items() if info["domain"] == ["general"]}
    mapped: list[tuple[str, str]] = []
    out_of_scope: list[str] = []
    for name in git_files(git_dir):
        if not (name.startswith("nlupp/data/") and "/fold" in name and name.endswith(".json")):
            continue
        for item in json.loads(git_show(git_dir, name)):
            text, intents = item["text"].strip(), frozenset(item.get("intents", ()))
            domain = intents - general
            if domain:
                if not domain & NLUPP_DROPPED_DOMAIN:
                    out_of_scope.append(text)
            elif intents in NLUPP_LABELS:
                label = NLUPP_LABELS[intents]
                if label != "human_handoff" and (NLUPP_NOT_BARE.search(text) or len(text.split()) > 10
                                                 or (label == "greet" and "please" in text.lower())):
                    continue
                if not (label == "human_handoff" and NLUPP_NOT_HANDOFF.search(text)):
                    mapped.append((text, label))
    rng = random.Random(77)
    out_of_scope = sorted({t for t in out_of_scope if not DOMAIN_WORDS.search(t)})
    rows = [(t, "out_of_scope") for t in rng.sample(out_of_scope, min(NLUPP_OUT_OF_SCOPE, len(out_of_scope)))]
    return rows + sorted(set(mapped))


def test_lines() -> set[str]:
    return {fold(e.text).strip() for name in ("heldout", "dev", "dev2") for e in load_examples(EVALUATION / name)}


def clean(rows: list[tuple[str, str]], forbidden: set[str]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for text, intent in rows:
        text = " ".join(text.split())
        key = fold(text).strip()
        if (not text or not text.isprintable() or key in seen or key in forbidden or any(c in text for c in "[]{}()#")
                or (intent == "out_of_scope" and DOMAIN_WORDS.search(text))):
            continue
        seen.add(key)
        out.append((text, intent))
    return out


def write(path: Path, header: str, rows: list[tuple[str, str]]) -> None:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in rows:
        by_intent[intent].append(text)
    lines = [*("# " + h for h in header.splitlines()), 'version: "3.1"', "nlu:"]
    for intent in sorted(by_intent):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in sorted(by_intent[intent])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{path.name}: {len(rows)} examples", {k: len(v) for k, v in sorted(by_intent.items())})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hwu64")
    parser.add_argument("--snips")
    parser.add_argument("--banking77")
    parser.add_argument("--sgd")
    parser.add_argument("--taskmaster")
    parser.add_argument("--xsid")
    parser.add_argument("--nlupp")
    args = parser.parse_args()
    forbidden = test_lines()
    sources = {
        "hwu64": (args.hwu64, hwu64, "HWU64 / NLU-Evaluation-Data, github.com/xliuhw/NLU-Evaluation-Data, CC BY 4.0"),
        "snips": (args.snips, snips, "SNIPS NLU benchmark, github.com/sonos/nlu-benchmark, CC0 1.0"),
        "banking77": (args.banking77, banking77,
                      "Banking77, github.com/PolyAI-LDN/task-specific-datasets, CC BY 4.0"),
        "sgd": (args.sgd, sgd, "Schema-Guided Dialogue (DSTC8), github.com/google-research-datasets/"
                "dstc8-schema-guided-dialogue, CC BY-SA 4.0 (this file only)\n"
                "This file is licensed under CC BY-SA 4.0 (derived from Schema-Guided Dialogue), not Apache-2.0."),
        "taskmaster": (args.taskmaster, taskmaster,
                       "Taskmaster-4 (coffee ordering), github.com/google-research-datasets/Taskmaster, CC BY 4.0"),
        "xsid": (args.xsid, xsid, "xSID 0.4 (German), github.com/mainlp/xsid, CC BY-SA 4.0 (this file only)\n"
                 "This file is licensed under CC BY-SA 4.0 (derived from xSID), not Apache-2.0."),
        "nlupp": (args.nlupp, nlupp, "NLU++ (banking and hotels), github.com/PolyAI-LDN/task-specific-datasets "
                  "(nlupp/), CC BY 4.0"),
    }
    languages = {"xsid": "de"}
    for name, (git_dir, reader, credit) in sources.items():
        if git_dir:
            header = (f"{credit}\ncommit {git_head(git_dir)}; relabelled into lastmile intents by "
                      f"nlu/tools/import_outside.py (rules in nlu/data/SOURCES.md)")
            path = DATA_DIR / f"{languages.get(name, 'en')}_{name}.yml"
            write(path, header, clean(reader(git_dir), forbidden))


if __name__ == "__main__":
    main()
