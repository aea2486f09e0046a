"""Find training lines whose intent contradicts the intent definitions (docs/nlu.md, "Label rules"),
and optionally move reviewed lines to the right intent block.

    python -m nlu.tools.label_audit                  # list hits: rule, file:line, label -> target, text
    python -m nlu.tools.label_audit --apply FILE     # FILE: lines "path:lineno target" (reviewed hits)

Only nlu/data/*.yml is read (never the dev or held-out sets)."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"

NEIGHBOUR = (r"neighbou?r|next door|vecin|voisin|nachbar|vizinh|"
             # another household or business in the building: a neighbour too
             r"shop downstairs|flat above|tienda de abajo|depto de arriba|boutique en bas|appart du dessus|"
             r"laden unten|wohnung druber|loja de baixo|apartamento de cima")
PICKUP = (r"locker|pick ?up point|parcel shop|collection point|post office|my (work|office)|"
          r"punto de recogida|oficina de correos|taquilla|point relais|relais colis|casier|bureau de poste|"
          r"packstation|paketshop|postfiliale|paketstation|ponto de recolha|cacifo|correios|lockers?")
ANOTHER_TIME = (r"not (be )?(home|in|back|there) (until|till|before)|won'?t be (home|in|back) (until|till|before)|"
                r"(tomorrow|another day|other day|next week|on (monday|tuesday|wednesday|thursday|friday|saturday|sunday))|"
                r"no (estoy|estare|voy a estar).*hasta|otro dia|manana|la semana que viene|"
                r"(rentre|serai) pas avant|pas la avant|demain|autre jour|semaine prochaine|"
                r"nicht vor|erst ab|\bmorgen\b(?<!guten morgen)|anderen tag|naechste woche|nachste woche|"
                r"so (chego|estou|volto)|amanha|outro dia|semana que vem|proxima semana")
WHERE_LEFT = (r"where (did|was|has) (you|he|she|they|it|the driver|driver|u)\b.*(leave|left|put|drop)|where.*(been )?left|"
              r"(photo|pic|picture|proof|signature|signed)|"
              r"donde (lo|la) (dejaron|dejo|dejaste)|foto|prueba de entrega|firma|"
              r"ou (l'avez|l'a|avez|a) .*(laiss|depos|mis)|preuve|signature|"
              r"wo (haben|hat|wurde).*(abgestellt|abgelegt|hinterlegt|gelassen)|beweis|nachweis|unterschrift|"
              r"onde (deixaram|deixou|foi deixad)|comprovativo|comprovante|assinatura")

# rule name, pattern, labels it contradicts, target intent
RULES = [
    ("neighbour->change_address", NEIGHBOUR, {"delivery_instructions", "reschedule"}, "change_address"),
    ("pickup/work->change_address", PICKUP, {"delivery_instructions"}, "change_address"),
    ("another-time->reschedule", ANOTHER_TIME, {"delivery_instructions"}, "reschedule"),
    ("where-left/photo->proof_of_delivery", WHERE_LEFT, {"track_order"}, "proof_of_delivery"),
]


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    return re.sub(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]*)\]\{[^}]*\}", r"\1\2",
                  "".join(c for c in text if not unicodedata.combining(c)))


def examples(path: Path):
    intent = None
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.match(r"- intent: (\S+)", line)
        if m:
            intent = m.group(1)
        elif re.match(r"- (synonym|regex|lookup):", line):
            intent = None
        elif intent and line.startswith("    - "):
            yield no, intent, line[6:]


def audit() -> None:
    for path in sorted(DATA.glob("*.yml")):
        for no, intent, text in examples(path):
            for name, pattern, sources, target in RULES:
                if intent in sources and re.search(pattern, fold(text)):
                    print(f"{name}\t{path.name}:{no}\t{intent} -> {target}\t{text}")


def apply(moves_file: Path) -> None:
    moves: dict[str, dict[int, str]] = {}
    for raw in moves_file.read_text().splitlines():
        if raw.strip() and not raw.startswith("#"):
            loc, target = raw.split()
            name, line_no = loc.rsplit(":", 1)
            moves.setdefault(name, {})[int(line_no)] = target
    for name, by_line in moves.items():
        path = DATA / name
        lines = path.read_text(encoding="utf-8").splitlines()
        moved: dict[str, list[str]] = {}
        for no, target in by_line.items():
            assert lines[no - 1].startswith("    - "), (name, no)
            moved.setdefault(target, []).append(lines[no - 1])
        lines = [ln for i, ln in enumerate(lines, 1) if i not in by_line]
        for target, block in moved.items():
            header = next((i for i, ln in enumerate(lines) if ln == f"- intent: {target}"), None)
            if header is None:
                lines += [f"- intent: {target}", "  examples: |", *block]
                continue
            end = header + 2
            while end < len(lines) and lines[end].startswith("    - "):
                end += 1
            lines[end:end] = block
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: moved {len(by_line)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--apply":
        apply(Path(sys.argv[2]))
    else:
        audit()
