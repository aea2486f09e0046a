"""Robust text handling before features: placeholders become words, "help me to ..." /
"I need assistance with ..." wrappers are taken off a request, and so are salutations and letter
openings before it ("Bonjour madame, ...", "Sehr geehrte Damen und Herren, ...", "Olá, boa tarde,
...", with their small talk or a question announced: "hey du, alles klar? ...", "Hallo, ich habe eine Frage:
...") and a letter's closing after it ("Cordialement", "Mit freundlichen Grüßen, Anna"), in the five
languages.

Works on folded text (`features.fold`: lowercase, no accents, straight apostrophes). A wrapper
comes off only when at least two words remain, so "help me", "I need help" stay `help`; a
salutation only before three words or more, so "bonjour madame", "olá, tudo bem", "hola de nuevo"
stay `greet`.
"""

from __future__ import annotations

import re

# {{Order Number}}, <order number>: what support-ticket templates leave in a message
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]{1,40}?)\s*\}\}|<\s*([a-z][a-z _]{1,40}?)\s*>")

_ASK = r"(?:please\s+|kindly\s+|pls\s+)?"
_WRAPPERS = [
    # en
    rf"{_ASK}(?:can|could|would|will)\s+(?:you|u)\s+{_ASK}(?:help|assist)\s+me\s+(?:out\s+)?(?:to\s+|with\s+|in\s+)?",
    rf"{_ASK}(?:help|assist)\s+me\s+(?:out\s+)?(?:to\s+|with\s+|in\s+)?",
    r"i\s*(?:'d|would)\s+(?:like|love|appreciate)\s+(?:some\s+|your\s+)?(?:help|assistance|support)\s+"
    r"(?:to|with|in|for|on)\s+",
    r"i\s*(?:need|want|require|am\s+looking\s+for|'m\s+looking\s+for)\s+(?:some\s+|your\s+|a\s+little\s+)?"
    r"(?:help|assistance|support|a\s+hand)\s+(?:to|with|in|for|on)\s+",
    r"how\s+(?:can|do|could)\s+i\s+get\s+(?:some\s+)?(?:help|assistance|support)\s+(?:to|with|for)\s+",
    r"(?:can|could|may)\s+i\s+(?:get|have)\s+(?:some\s+)?(?:help|assistance|support)\s+(?:to\s+|with\s+|in\s+)?",
    r"(?:would|do)\s+(?:you|u)\s+mind\s+(?:helping|assisting)\s+me\s+(?:to\s+|with\s+|in\s+)?",
    r"i\s*(?:'m\s+|am\s+|was\s+)?hop(?:e|ing)\s+(?:that\s+)?(?:you|u)\s+(?:can|could|would|will)\s+"
    r"(?:help|assist)\s+me\s+(?:to\s+|with\s+|in\s+)?",
    # es
    r"(?:me\s+)?(?:puede[ns]?|podria[ns]?|podeis)\s+ayudar(?:me)?\s+(?:a|con|para)\s+",
    r"ayuda(?:me|nme)\s+(?:a|con|para)\s+",
    r"(?:necesito|quisiera|quiero)\s+ayuda\s+(?:para|con)\s+",
    r"(?:necesito|quisiera|quiero)\s+que\s+me\s+ayude[ns]?\s+(?:a|con)\s+",
    # fr
    r"(?:pouvez|pourriez|peux|pourrais)[- ](?:vous|tu)\s+m'aider\s+(?:a|pour|avec)\s+",
    r"aide[zr]?[- ]moi\s+(?:a|pour)\s+",
    r"j'(?:ai|aurais)\s+besoin\s+d'(?:aide|assistance)\s+(?:pour|avec)\s+",
    r"j'(?:ai|aurais)\s+besoin\s+que\s+(?:vous|tu)\s+m'aid(?:iez|ies|es)\s+(?:a|pour)\s+",
    # de
    r"(?:konnen|konnten|kannst|konntest)\s+(?:sie|du)\s+mir\s+(?:bitte\s+)?(?:dabei\s+)?helfen,?\s+",
    r"ich\s+(?:brauche|brauchte|benotige)\s+(?:bitte\s+)?hilfe\s+(?:bei|mit|beim|um)\s+",
    r"(?:hilf|helfen\s+sie)\s+mir,?\s+(?:bitte\s+)?(?:bei|mit|beim)?\s*",
    # pt
    r"(?:pode|podem|poderia|poderiam|podes)\s+(?:me\s+)?ajudar(?:-me)?\s+(?:a|com|para)\s+",
    r"(?:me\s+)?ajud(?:a|e)(?:-me)?\s+(?:a|com)\s+",
    r"(?:preciso|precisava|gostaria)\s+de\s+ajuda\s+(?:para|com)\s+",
]
_WRAPPER = re.compile(r"(?<!\w)(?:" + "|".join(_WRAPPERS) + r")")
_WORD = re.compile(r"\w+")
MIN_WORDS_LEFT = 2
# a salutation comes off only before a message of its own: "hola de nuevo", "bonjour à vous", "olá,
# tudo bem" keep their greeting (they are `greet`)
MIN_WORDS_AFTER_SALUTATION = 3

# Who a salutation is addressed to: "hi team", "bonjour madame", "hallo zusammen", "olá pessoal"
_TO = (r"(?:there|all|everyone|everybody|guys|folks|team|support(?:\s+team)?|"
       r"a\s+todos|todos|chicos|equipo|senor(?:a|ita)?|"
       r"madame|monsieur|mademoiselle|messieurs|tout\s+le\s+monde|(?:l')?equipe|"
       r"zusammen|leute|allerseits|du|ihr|(?:herr|frau)\s+[^\s,:;.!?]+|"
       r"pessoal|gente|equipa|equipe|senhor(?:a)?)")
# A letter's formal address, up to its comma: "Dear Sir or Madam,", "Estimados señores:",
# "Sehr geehrte Frau Weber,", "Prezados senhores,", "Chère équipe,"
_ADDRESS = (r"(?:dear|to\s+whom\s+it\s+may\s+concern|estimad[oa]s?|muy\s+senor(?:es)?(?:\s+mios)?|"
            r"a\s+quien\s+corresponda|cher|chere|chers|cheres|a\s+qui\s+de\s+droit|"
            r"sehr\s+geehrte[rs]?|liebe[rs]?\s+(?:team|kundenservice|kundendienst|damen|frau|herr)|prezad[oa]s?|"
            r"car[oa]s?\s+(?:senhor|senhora|equip|cliente|apoio|suporte|servico|atendimento|amig)|exm[oa]s?\.?|"
            r"ilustrissim[oa]s?)(?:\s+[^\s,:;.!?]+){0,5}\s*[,:;]")
_GREETING = (r"(?:hi|hello|hey|hiya|heya|howdy|greetings|good\s+(?:morning|afternoon|evening|day)|"
             r"hola|buenas\s+(?:tardes|noches)|buen(?:os)?\s+dias?|buenas|saludos|"
             r"bonjour|bonsoir|salut|coucou|allo|re\s*bonjour|"
             r"hallo|servus|moin(?:\s+moin)?|gruezi|gruss\s+gott|gruess\s+gott|"
             r"guten\s+(?:tag|morgen|abend)|"
             r"ola|oi|oie|bom\s+dia|boa\s+(?:tarde|noite))")
# "hola, ¿qué tal?", "oi, tudo bem?", "salut ça va ?", "hi, how are you?": small talk in the
# opening, only when a question mark or a comma closes it
_HOW_ARE_YOU = (r"(?:how\s+are\s+(?:you|u)(?:\s+doing)?|hope\s+(?:you're|you\s+are)\s+well|"
                r"que\s+tal|como\s+estas?|ca\s+va|comment\s+allez[- ]vous|"
                r"wie\s+geht(?:'s|s|\s+es)?(?:\s+(?:ihnen|dir))?|"
                r"tudo\s+(?:bem|bom|certo)|como\s+vai(?:\s+(?:voce|o\s+senhor|a\s+senhora))?|"
                r"alles\s+(?:klar|gut|fit|ok)(?:\s+bei\s+(?:dir|euch|ihnen))?|wie\s+lauft'?s(?:\s+so)?)\s*[?,!.]")
# "ich hätte da eine Frage", "I have a quick question", "j'ai une question": an announcement, not the request;
# after a greeting it goes with it, so "guten Tag, ich hätte da eine Frage" keeps all its words (greet) and
# "Hallo, ich habe eine Frage: wo ist mein Paket?" is asked as "wo ist mein Paket?"
_A_QUESTION = (r"(?:ich\s+(?:hatte|habe|hab)|i\s+(?:have|'ve\s+got|got)|j'ai|tengo|tenho|eu\s+tenho)"
               r"(?:\s+(?:da|mal|nur|noch|just|une|una|uma|a|eine|ne))+\s+(?:(?:kurze|kleine|quick|small|petite|"
               r"pequena)\s+)?(?:frage|question|pregunta|duda|pergunta|duvida)(?:\s*[?,!.:]|\s*$)")
_OPENING = re.compile(
    rf"^\s*(?:{_ADDRESS}|{_GREETING}(?:\s+{_TO})?\b[\s,:;.!?¡¿-]*(?:{_HOW_ARE_YOU}|{_A_QUESTION})?|{_HOW_ARE_YOU}|"
    rf"{_A_QUESTION})[\s,:;.!?¡-]*")
# A letter's closing at the end, after a punctuation mark or a line break, with a name of up to
# three words: "..., Cordialement, Marie Dupont" ("I'm writing with regards to my order" keeps its words)
_CLOSING = re.compile(
    r"(?:(?:kind|best|warm|many)\s+regards|regards|sincerely(?:\s+yours)?|yours\s+(?:sincerely|faithfully)|"
    r"(?:un\s+)?saludo(?:s)?(?:\s+cordiales)?|atentamente|cordialmente|"
    r"(?:bien\s+|tres\s+)?cordialement|salutations(?:\s+distinguees)?|bien\s+a\s+vous|"
    r"mit\s+freundlichen\s+grussen|(?:viele|beste|liebe|freundliche)\s+grusse|mfg|lg|vg|"
    r"atenciosamente|cumprimentos|(?:um\s+)?abraco|att\.?)"
    r"(?:[\s,]+[^\s,.!?]+){0,3}[\s.!]*$")
_SEPARATORS = frozenset(" \t\n\r\f\v,.;!?-")
_BREAKS = frozenset(",.;!?\n")  # one of them must come before a closing
_KEPT = re.compile(r"\s*[.!?]?")  # of the separators before a closing: a sentence's last mark stays
# A closing and a name of three words fit in far less: only the message's end is searched. (One pattern for the
# separators, the closing and the name backtracked in cubic time on a run of separators: 2,000 spaces took 40 s.)
CLOSING_TAIL = 80


def _if_enough_left(stripped: str, original: str, min_words: int = MIN_WORDS_LEFT) -> str:
    """`stripped` (spaces squeezed) when something was removed and at least `min_words` words remain."""
    if stripped != original and len(_WORD.findall(stripped)) >= min_words:
        return " ".join(stripped.split())
    return original


def placeholders(folded: str) -> str:
    """`{{Order Number}}` -> `order number`."""
    return _PLACEHOLDER.sub(lambda m: " " + (m.group(1) or m.group(2)).replace("_", " ") + " ", folded)


def unwrap(folded: str) -> str:
    """The request without a "help me to ..." wrapper (when at least two words remain)."""
    return _if_enough_left(_WRAPPER.sub(" ", folded, count=1), folded)


def unaddress(folded: str) -> str:
    """The message without its salutations or letter opening ("bonjour madame, ...", "sehr
    geehrte damen und herren, ...", "ola, boa tarde, ...") and its closing ("cordialement"),
    when at least three words remain."""
    stripped = folded
    for _ in range(3):  # "hola, buenas tardes, ..." / "olá, bom dia, tudo bem? ..."
        shorter = _OPENING.sub("", stripped, count=1)
        if shorter == stripped:
            break
        stripped = shorter
    return _if_enough_left(_without_closing(stripped), folded, MIN_WORDS_AFTER_SALUTATION)


def _without_closing(text: str) -> str:
    """`text` without the closing at its end, if one follows a punctuation mark or a line break."""
    position = max(0, len(text) - CLOSING_TAIL)
    while (match := _CLOSING.search(text, position)) is not None:
        start = begin = match.start()
        while begin > 0 and text[begin - 1] in _SEPARATORS:
            begin -= 1
        separators = text[begin:start]
        marks = separators.rstrip()  # the separators up to the spaces just before the closing
        if (marks and marks[-1] in _BREAKS) or "\n" in separators[len(marks):]:
            return text[:begin] + _KEPT.match(separators).group(0)  # type: ignore[union-attr]  # always matches
        position = start + 1
    return text
