"""What kind of reply a message is: the one recogniser, shared by `mailflow inspect`
(`reply_kind`) and the pipeline (understand.py hands it to casework/filing.py).

- `answer`: the service's answer; the request is answered.
- `holding`: a new date (`#holding DATE`, or "I will reply by 10 December").
- `acknowledgement`: received, passed on, being looked into, no answer yet: in words, or
  a CRM's automatic acknowledgement that carries no auto-reply header ("This is an automated
  response… your reference is…", "Thank you for contacting…, we aim to respond within…").
- `automatic`: an out-of-office or other automatic mail, as inbound/classify.py (the one
  recogniser of automatic mail) says.

An officer decides when the words mislead: `#answer` at the top forces the answer, `#ack`
keeps the request open. Patterns are written folded (classify.fold: lower case, no
accents), one statement each, so that an answer which happens to say "thanks, received the
photos" is still an answer when it also says what was done.
"""

from __future__ import annotations

import re
from datetime import date

from mailflow.casework import commands, dates
from mailflow.inbound.classify import AUTO_REPLY, NORMAL, Classification, fold, out_of_office

ANSWER, HOLDING, ACKNOWLEDGEMENT, AUTOMATIC = "answer", "holding", "acknowledgement", "automatic"
KINDS = (ANSWER, HOLDING, ACKNOWLEDGEMENT, AUTOMATIC)
# `#answer` / `#ack` (casework/actions.py) and `#holding` decide before any words do.
FORCED = {"answer": ANSWER, "ack": ACKNOWLEDGEMENT, "holding": HOLDING}


def _any(*patterns: str) -> str:
    return "(?:" + "|".join(patterns) + ")"


_THING = r"(?:e-?mail|message|enquiry|inquiry|request|query|letter|correspondence|case|report|" \
    r"complaint|referral|note)"
_WE = r"(?:i|we|i'm|we're|i've|we've|i'll|we'll)"
# Received, passed on, being looked into, an answer to come.
_ACK = re.compile(r"\b" + _any(
    # received
    rf"(?:i|we)(?: have|'ve)? (?:now |just )?(?:received|got|had|logged|registered|recorded) "
    rf"(?:your|the|this|cllr \w+'s|councillor \w+'s) (?:\w+ )?{_THING}",
    rf"(?:your|the|this) (?:\w+ )?{_THING} (?:has been|have been|was|is (?:now )?being|is now|is) "
    r"(?:received|logged|registered|recorded|acknowledged|passed|forwarded|referred|allocated|"
    r"assigned|raised|sent on|sent to|escalated|being (?:dealt with|looked at|looked into|"
    r"investigated|considered|processed|handled)|under (?:review|investigation|consideration))",
    r"(?:thanks?|thank you|many thanks|cheers)[ ,.!-]*(?:this is |that's |that is |it's |all )?"
    r"(?:received|noted|got it|logged)",
    r"(?:received|noted|got it)(?: with (?:many )?thanks| and noted|[ ,.!-]+(?:thanks?|"
    r"thank you|many thanks))",
    rf"(?:{_THING}|well) received",
    r"(?:receipt of|acknowledge receipt|acknowledging receipt|to acknowledge (?:your|the|this)|"
    r"this is (?:just )?(?:an|to) acknowledge?(?:ment)?|just (?:a quick (?:note|email) )?to "
    r"(?:acknowledge|confirm (?:receipt|that (?:i|we) (?:have )?received)))",
    # passed on
    rf"{_WE}? ?(?:have |has |will |am |are )?(?:pass(?:ed|ing)?|forward(?:ed|ing)?|"
    r"refer(?:red|ring)?|sen[dt]|sending|allocat(?:ed|ing)|assign(?:ed|ing)|rais(?:ed|ing)|"
    r"escalat(?:ed|ing)|logg(?:ed|ing)|hand(?:ed|ing)) (?:this|it|your \w+|the \w+|this \w+)"
    r"(?: \w+)? (?:on )?(?:to|with|onto|on to)\b",
    r"(?:i|we)(?: have|'ve)? (?:now |just )?received (?:it|this|them)\b",
    r"passed (?:this|it) (?:on|over|along)",
    # looking into it, an answer to come
    r"(?:i|we)(?: am|'m| are|'re| will be|'ll be| shall be)? (?:currently |now |already )?"
    r"(?:looking into|investigating|checking|dealing with|following (?:this )?up|making "
    r"(?:enquiries|inquiries)|liaising|in (?:touch|contact) with|considering|reviewing)",
    r"(?:i|we)(?: will|'ll| shall| aim to| hope to| intend to)? "
    r"(?:(?:try to|endeavour to|aim to) )?"
    r"(?:look into|investigate|check|find out|make (?:some )?(?:enquiries|inquiries)|"
    r"(?:come|get|revert) back to you|respond (?:to you )?(?:fully |in full )?(?:as soon as|"
    r"shortly|in due course|within)|reply (?:fully |in full )?(?:as soon as|shortly|in due "
    r"course|within)|be in touch|update you|keep you (?:updated|informed|posted)|let you know)",
    r"(?:as soon as|once) (?:i|we) (?:can|have|hear|know|receive|get)",
    r"(?:aim|expect|endeavour|try) to (?:respond|reply|answer|get back)",
    r"(?:within|in) \d+ working days",
    r"thank you for (?:contacting|getting in touch with|your (?:e-?mail|message|enquiry) to) "
    r"(?:the |our )?\w+",
    r"(?:your|the) (?:case |enquiry |query |ticket |call )?(?:reference|ref)(?: number| no\.?)? "
    r"(?:is|will be)",
    # other languages (fr, de, nl, es, it, pt, pl, cy, gd)
    r"(?:nous avons|j'ai) bien recu", r"accus(?:e|ons) (?:de )?reception",
    r"(?:nous )?(?:reviendrons|revenons) vers vous", r"je (?:reviens|reviendrai) vers vous",
    r"(?:transmis|transmise) (?:a|au|aux)", r"en cours de traitement", r"nous traitons",
    r"(?:wir haben|ich habe) ihre \w+ erhalten", r"eingangsbestatigung",
    r"bestatigen (?:den|hiermit den) eingang", r"(?:wir melden|ich melde) (?:uns|mich)",
    r"weitergeleitet", r"(?:wird|werden) (?:derzeit )?bearbeitet", r"in bearbeitung",
    r"(?:wij hebben|we hebben|ik heb) uw \w+ (?:goed )?ontvangen", r"ontvangstbevestiging",
    r"(?:wij komen|we komen|ik kom) (?:hier )?(?:zo )?(?:snel )?(?:mogelijk )?(?:bij u )?"
    r"(?:op )?terug", r"doorgestuurd", r"in behandeling",
    r"hemos recibido su", r"acusamos recibo", r"(?:le )?responderemos",
    r"nos pondremos en contacto", r"(?:hemos )?(?:remitido|reenviado) su", r"en tramite",
    r"abbiamo ricevuto la sua", r"confermiamo (?:la )?ricezione", r"le risponderemo",
    r"(?:e stat[oa] )?inoltrat[oa]", r"in lavorazione",
    r"recebemos (?:a sua|o seu|sua|seu)", r"acusamos a rece[cp]ao", r"responderemos",
    r"entraremos em conta(?:c)?to", r"encaminhad[oa] (?:a|ao|para)",
    r"otrzymalismy", r"potwierdzamy otrzymanie", r"odpowiemy", r"przekazalismy",
    r"(?:rydym|rwyf|dw i|dwi)(?:'n| yn)? wedi derbyn", r"wedi derbyn eich",
    r"byddwn yn (?:ymateb|cysylltu|ateb)", r"wedi (?:ei|eu) (?:anfon|basio) ymlaen",
    r"fhuair sinn do", r"fhuair mi do",
) + r"\b")
# What an answer says: what was found or done, a decision. Past tense, not a promise.
_DONE = re.compile(r"\b" + _any(
    r"(?:has|have|had) (?:now )?(?:been )?(?:repaired|fixed|filled|completed|resolved|done|"
    r"cleared|removed|collected|replaced|inspected|visited|reinstated|restored|closed|"
    r"approved|refused|rejected|granted|issued|installed|cleaned|emptied|treated|cut|"
    r"arranged|booked|scheduled|ordered|instructed|served|carried out|attended|made safe|"
    r"looked into|investigated|checked|spoken to|contacted|written to|concluded|decided)",
    r"(?:was|were) (?:repaired|fixed|filled|completed|resolved|cleared|removed|collected|"
    r"replaced|inspected|visited|reinstated|restored|approved|refused|granted|issued|"
    r"installed|cleaned|emptied|treated|made safe|carried out|attended)",
    r"(?:i|we) (?:inspected|visited|repaired|fixed|attended|found|checked|spoke|contacted|"
    r"can confirm that|can advise|can now confirm|are pleased to|regret to|have found|"
    r"have decided|have arranged|have scheduled|have booked)",
    r"(?:our|the) (?:inspector|inspection|officer|team|contractor|crew) (?:found|attended|"
    r"visited|inspected|reported|confirmed|has|have)",
    r"following (?:an|the|my|our) (?:inspection|visit|investigation|review)",
    r"in (?:answer|response|reply) to (?:your|the|cllr|councillor) \w+", r"please find attached",
    r"the outcome", r"(?:is|are) scheduled (?:for|to)",
    r"(?:will be|is being) (?:repaired|fixed|filled|cleared|removed|collected|replaced|"
    r"resurfaced|cleaned|emptied|installed|cut|treated) (?:on|by|next|this|within|in)",
) + r"\b")


_OPENING = 400  # folded characters: where an acknowledgement says what it is
_SHORT = 80  # words: a reply this short that acknowledges says nothing else


def words(text: str) -> str:
    """`acknowledgement` or `answer` for a person's reply by its words alone: an
    acknowledgement says so in its opening (or is short) and reports nothing done or
    decided; "If anything changes I will let you know" at the end of an answer is no
    acknowledgement."""
    body = fold(text[:8000])
    ack = _ACK.search(body)
    if ack and not _DONE.search(body) and (ack.start() < _OPENING
                                           or len(body.split()) <= _SHORT):
        return ACKNOWLEDGEMENT
    return ANSWER


def _own(text: str) -> str:
    """The writer's own lines: the visible text keeps a quoted paragraph that an inline answer
    follows, but what it quotes is not what this reply says."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def of(text: str, classification: Classification, today: date) -> str:
    """The kind of a reply to a request (the caller knows it is one)."""
    text = _own(text)
    if classification.kind == AUTO_REPLY:
        # A CRM's acknowledgement known only by its words (no auto-reply header) still
        # acknowledges; an out-of-office, or anything a header marks, does not.
        if classification.by_words and not out_of_office(text) and words(text) == \
                ACKNOWLEDGEMENT:
            return ACKNOWLEDGEMENT
        return AUTOMATIC
    if classification.kind != NORMAL:
        return AUTOMATIC
    cmds, _ = commands.parse(text)
    for cmd in cmds:
        if cmd.name in FORCED:
            return FORCED[cmd.name]
    if cmds:  # other commands (#redirect, #help): the words below them say
        return words(commands.strip(text))
    if dates.promised_date(text, today):
        return HOLDING
    return words(text)
