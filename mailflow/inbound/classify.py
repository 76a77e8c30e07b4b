"""Automatic mail, in layers: our own mail coming back (loops), bounces, auto-replies.

Each layer looks at different evidence, because no single header is reliable: our own
markers first (X-Mailflow-Kind, our Message-ID shape, our From), then delivery reports and
mailer-daemons, then the RFC 3834 and vendor auto-reply headers, then the subject lines of
out-of-office replies and their opening words, in the council's languages and its
neighbours'. The answer says which evidence decided, for `inspect` and the record.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mailflow.inbound import bounces
from mailflow.inbound.parse import Parsed
from mailflow.inbound.reply import visible_text
from mailflow.inbound.text import content_type
from mailflow.settings import Settings

NORMAL, AUTO_REPLY, BOUNCE, OWN_MAIL = "normal", "auto_reply", "bounce", "own_mail"

_BOUNCE_SUBJECT = re.compile(
    r"^(?:\[[^\]]{0,30}\]\s*)?(undeliverable|undelivered mail|undeliverable mail|mail delivery "
    r"fail|delivery status notification \((failure|delay)|delivery failure|failure notice|"
    r"returned mail|message not delivered|delivery has failed|unzustellbar|non remis|no se "
    r"puede entregar|warning: message .* delayed|delayed mail|mail delivery (failed|problem)|"
    r"message status - undeliverable|nondeliverable mail|non-delivery report|delivery "
    r"notification: delivery has failed|mail system error|message you sent blocked|"
    r"onbestelbaar|non recapitabile|n[ãa]o (?:é|e) poss[ií]vel entregar|kan ikke leveres|"
    r"ikke levert|kunde inte levereras|olevererbart|nie można dostarczyć|niedostarczalna|"
    r"недоставлено|не доставлено|не вдалося доставити|nedoručiteln|kézbesíthetetlen|"
    r"impossible de remettre)",
    re.IGNORECASE,
)
# Message-IDs we mint (outbound/render.py new_message_id): <hint.20 hex digits@our domain>,
# where the hint is "mf" or a case reference.
_OUR_MSGID = r"<(mf|{prefix}-\d{{4}}-\d{{5,}})\.[0-9a-f]{{20}}@{domain}>"


@dataclass
class Classification:
    kind: str  # normal | auto_reply | bounce | own_mail
    why: str = ""
    by_words: bool = False  # an auto-reply known by its subject or text, not by a header

    @property
    def automatic(self) -> bool:
        return self.kind != NORMAL


def classify(p: Parsed, s: Settings, envelope_from: str | None = None) -> Classification:
    own = _own_mail(p, s)
    if own:
        return Classification(OWN_MAIL, own)
    ctype = content_type(p.msg)
    bounce = _bounce(p, envelope_from, ctype)
    if bounce:
        return Classification(BOUNCE, bounce)
    auto = _auto_reply(p, envelope_from, ctype)
    if auto:
        return Classification(AUTO_REPLY, auto)
    words = _auto_words(p)
    if words:
        return Classification(AUTO_REPLY, words, by_words=True)
    return Classification(NORMAL)


def _own_mail(p: Parsed, s: Settings) -> str | None:
    if p.header("X-Mailflow-Kind"):
        return "it carries our X-Mailflow-Kind header"
    if s.is_ours(p.sender):
        return f"it is from our casework address {p.sender}"
    domain = re.escape(s.council.casework_address.partition("@")[2])
    ours = _OUR_MSGID.format(prefix=s.council.reference_prefix, domain=domain)
    if p.message_id and re.fullmatch(ours, p.message_id, re.I):
        return f"its Message-ID {p.message_id} is one we minted"
    return None


def _null_sender(p: Parsed, envelope_from: str | None) -> bool:
    return envelope_from == "" or p.header("Return-Path").strip() == "<>"


def _bounce(p: Parsed, envelope_from: str | None, ctype: str) -> str | None:
    if ctype == "multipart/report":
        report = str(p.msg.get_param("report-type") or "").lower()
        if report == "delivery-status":
            if bounces.is_failure_report(p.msg) is False:
                return None  # every recipient was delivered: a receipt, not a bounce
            return "a delivery status notification (RFC 3464)"
    if p.header("X-MS-Exchange-Message-Is-Ndr"):
        return "an Exchange non-delivery report"
    if bounces.is_daemon(p.sender):
        return f"from the mailer-daemon {p.sender}"
    automatic = _null_sender(p, envelope_from) or p.header("Auto-Submitted").strip().lower() \
        not in ("", "no")
    if _BOUNCE_SUBJECT.match(p.subject) and (automatic or (
            bounces.reads_as_failure(p.msg) and bounces.read(p.msg).recipients)):
        return f"a delivery failure report ({p.subject[:60]!r})"
    # Simple non-standard bounces (qmail, old Exchange, GroupWise, Yahoo, Domino, gateways)
    # carry auto-reply headers and a subject of their own: their text says what they are.
    if automatic and bounces.reads_as_failure(p.msg):
        return "a delivery failure report (its text)"
    return None


def _auto_reply(p: Parsed, envelope_from: str | None, ctype: str) -> str | None:
    if ctype == "multipart/report":
        return f"a {p.msg.get_param('report-type') or 'delivery'} report (a receipt)"
    auto = p.header("Auto-Submitted").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto[:60]}"
    for name in _AUTO_HEADERS:
        if p.header(name).strip():
            return f"{name}: {p.header(name)[:60]}"
    precedence = p.header("Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    # Senders ask with it that nothing answers them: Exchange's own automatic mail, and
    # robots. People's mail clients do not write it ("None" asks for nothing).
    suppress = p.header("X-Auto-Response-Suppress").strip()
    if suppress and suppress.lower() != "none":
        return f"X-Auto-Response-Suppress: {suppress[:60]}"
    if _null_sender(p, envelope_from):
        return "a null envelope sender (<>)"
    return None


def _auto_words(p: Parsed) -> str | None:
    subject = fold(p.subject)
    if _OOF_SUBJECT.match(subject) or _OOF_SUBJECT_WORD.match(subject) \
            or _OOF_SUBJECT_ANYWHERE.search(subject):
        return f"an out-of-office subject ({p.subject[:60]!r})"
    return _oof_body(p.text)


# -- out-of-office by its words ----------------------------------------------------------------
# Vendors' markers of automatic mail. Exchange strips X-MS-Exchange-Organization-* at the
# organisation's edge, and -MessageDirectionality is on every message: neither is a marker.
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autogenerated",
                 "X-Autoreply-From", "X-Mail-Autoreply",
                 "X-MS-Exchange-Inbox-Rules-Loop", "X-MS-Exchange-Generated-Message-Source")


def fold(text: str) -> str:
    """Lower case without accents or curly apostrophes, one space between words: the
    patterns below are written folded (`reponse`, `buro`, `odpowiedz`, `fein`)."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    if not text.isascii():  # ASCII is its own NFKD form, with no combining marks
        text = _NON_ASCII.sub(_drop_marks, unicodedata.normalize("NFKD", text))
    return " ".join(text.lower().split())


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _drop_marks(run: re.Match[str]) -> str:
    """A run of non-ASCII characters without its combining marks (accents): only these runs
    are looked at character by character, not the whole text."""
    return "".join(c for c in run.group() if not unicodedata.combining(c))


def _any(*patterns: str) -> str:
    return "(?:" + "|".join(patterns) + ")"


# Subjects that are the auto-reply's own words (en, cy, gd, fr, de, nl, es, it, pl, pt).
_OOF_SUBJECT = re.compile(r"^\[?" + _any(
    r"automatic reply", r"auto(?:matic)?[- ]?repl(?:y|ies)", r"auto[- ]?respon(?:se|der)",
    r"automated (?:reply|response)", r"out[- ]of[- ](?:the[- ])?office", r"ooo\b",
    r"away from (?:my|the) (?:office|desk)", r"on (?:annual )?leave", r"vacation (?:reply|notice)",
    r"ateb awtomatig", r"ymateb awtomatig", r"allan o'?r swyddfa", r"i ffwrdd o'?r swyddfa",
    r"freagairt fh?ein-ghluasadach", r"a-mach as an oifis",
    r"reponse automatique", r"message d'absence", r"absente? du bureau",
    r"abwesenheitsnotiz", r"automatische antwort", r"abwesenheitsmeldung", r"nicht im bu(?:e)?ro",
    r"automatisch antwoord", r"niet op kantoor", r"afwezigheidsmelding",
    r"respuesta automatica", r"fuera de (?:la )?oficina",
    r"risposta automatica", r"fuori sede", r"fuori ufficio",
    r"odpowiedz automatyczna", r"automatyczna odpowiedz", r"poza biurem",
    r"resposta automatica", r"fora do escritorio",
) + r"\b", re.I)
# Single words that a person's subject may also start with ("Absence of street lights"):
# only as the auto-reply's prefix ("Afwezig: …") or the whole subject.
_OOF_SUBJECT_WORD = re.compile(_any(
    r"absence", r"absente?", r"abwesend", r"afwezig", r"ausente", r"ausencia", r"assente",
    r"assenza", r"nieobecnosc", r"nieobecn[ya]", r"urlaub", r"conges", r"vacation", r"holiday",
    r"away", r"ar wyliau", r"air falbh") + r"\s*(?::|$)", re.I)
_OOF_SUBJECT_ANYWHERE = re.compile(r"\bis (?:currently )?out of (?:the )?office\b", re.I)

# "I am out of the office": the auto-reply's statement of absence, present or future.
_AWAY = re.compile(r"\b" + _any(
    r"i(?: am|'m| will be) (?:currently |now |presently )?(?:out of (?:the )?office|"
    r"away(?: from (?:the|my) (?:office|desk))?|on (?:annual |parental |maternity |paternity |"
    r"sick |study )?leave|on (?:holiday|vacation)|not in the office|absent|out of office)",
    r"(?:rydw i|rwyf|rwy|dw i|dwi|byddaf)(?:'n| yn)? (?:allan o'?r swyddfa|i ffwrdd|ar wyliau|"
    r"ar absenoldeb|ddim yn y swyddfa)",
    r"tha mi (?:a-mach as an oifis|air falbh|air saor-laithean|air m' fhorladh)",
    r"chan eil mi (?:anns an|san) oifis",
    r"je (?:suis|serai) (?:actuellement |en ce moment |absente? )?(?:absente?|en conges?|"
    r"en vacances|hors du bureau|en deplacement|pas au bureau)",
    r"ich (?:bin|befinde mich)\b[^\n]{0,60}?\b(?:nicht im bu(?:e)?ro|abwesend|im urlaub|"
    r"au(?:ss|\u00df)er haus|nicht erreichbar)",
    r"ik ben\b[^\n]{0,60}?\b(?:afwezig|niet op kantoor|niet aanwezig|met vakantie|op vakantie|"
    r"met verlof|buiten kantoor)",
    r"(?:estoy|estare|me encuentro)\b[^\n]{0,40}?\b(?:fuera de (?:la )?oficina|ausente|"
    r"de vacaciones|de permiso)",
    r"(?:sono|saro)\b[^\n]{0,40}?\b(?:fuori (?:sede|ufficio)|assente|in ferie|in vacanza)",
    r"(?:jestem|bede|przebywam)\b[^\n]{0,40}?\b(?:poza biurem|nieobecn[ya]|na urlopie)",
    r"(?:estou|estarei|encontro-me|me encontro)\b[^\n]{0,40}?\b(?:fora do escritorio|"
    r"ausente|de ferias|de licenca)",
), re.I)
# "This is an automatic reply": a robot saying so.
_ROBOT = re.compile(r"\b" + _any(
    r"this is an? automat(?:ic|ed)(?:ally generated)? (?:reply|response|message|"
    r"acknowledge?ment|e-?mail|notification)",
    r"this (?:e-?mail|message) (?:is|was|has been) (?:automatically generated|sent "
    r"automatically|generated automatically)",
    r"(?:please )?do not reply to this (?:e-?mail|message)",
    r"your (?:e-?mail|message|enquiry) has been received",
    r"(?:neges|ateb|ymateb) awtomatig yw (?:hon|hwn)",
    r"mae hwn yn (?:ateb|ymateb|neges) awtomatig",
    r"(?:freagairt|teachdaireachd) fh?ein-ghluasadach",
    r"(?:ceci est |il s'agit d')une? (?:reponse|message) automatique",
    r"(?:dies ist|das ist) eine automatische (?:antwort|nachricht|benachrichtigung)",
    r"automatisch (?:generierte|erstellte) (?:nachricht|e-?mail|antwort)",
    r"dit is een automatisch(?:e)? (?:antwoord|bericht|gegenereerd bericht|reactie)",
    r"(?:esta|este) es una? (?:respuesta|mensaje) automatic[oa]",
    r"questa e una risposta automatica", r"questo e un messaggio automatico",
    r"to jest (?:automatyczna odpowiedz|odpowiedz automatyczna|wiadomosc automatyczna|"
    r"automatyczna wiadomosc)", r"wiadomosc (?:zostala )?wygenerowana automatycznie",
    r"(?:esta|este) e uma? (?:resposta|mensagem) automatica",
), re.I)
# What auto-replies add: when they will be back, where to go when it is urgent.
_RETURN = re.compile(r"\b" + _any(
    r"(?:on|upon|after) my return", r"when i (?:return|am back|get back)",
    r"(?:limited|no|intermittent) access to (?:my )?e-?mails?", r"for (?:anything )?urgent",
    r"if (?:your|the) (?:matter|enquiry|query|request|message) is urgent",
    r"(?:will not|won't) be (?:read|forwarded|monitored)", r"back in the office on",
    r"pan fydda[fi] (?:yn )?ol", r"ar ol (?:i mi )?ddychwelyd", r"os yw'?n fater brys",
    r"materion brys", r"nuair a thilleas mi", r"eiginneach",
    r"a mon retour", r"de retour le", r"en cas d'urgence",
    r"nach meiner ruckkehr", r"in dringenden fallen", r"wieder (?:erreichbar|im bu(?:e)?ro)",
    r"na mijn terugkeer", r"in dringende gevallen", r"weer (?:aanwezig|bereikbaar|op kantoor)",
    r"a mi (?:regreso|vuelta)", r"en caso de urgencia", r"asuntos urgentes",
    r"al mio (?:rientro|ritorno)", r"per (?:urgenze|questioni urgenti)", r"in caso di urgenza",
    r"po (?:moim )?powrocie", r"w (?:pilnych|naglych) sprawach",
    r"no meu (?:regresso|retorno)", r"quando (?:regressar|retornar)", r"em caso de urgencia",
    r"assuntos urgentes",
), re.I)
# What may come before the statement and still leave it the opening words.
_OPENING = re.compile(r"^(?:" + _any(
    r"(?:hello|hi|dear|good (?:morning|afternoon|day)|greetings|bonjour|madame|monsieur|hallo|"
    r"guten tag|sehr geehrte|liebe|beste|geachte|goedendag|hola|estimad[oa]s?|buongiorno|"
    r"gentile|dzien dobry|szanown|ola|bom dia|car[oa]s?|prezad[oa]s?|bore da|helo|shwmae|"
    r"annwyl|halo|a charaid|madainn mhath)\b[^,.!:\n]{0,60}[,.!:]",
    r"(?:many )?thanks?\b(?: you)?(?: very much)?(?: for (?:your (?:e-?mail|message|enquiry)|"
    r"contacting|getting in touch)[^.!\n]{0,80})?[.!,]",
    r"(?:merci|vielen dank|danke|bedankt|gracias|grazie|dziekuje|obrigad[oa]|diolch|tapadh leibh)"
    r"\b[^.!\n]{0,80}[.!]",
) + r")\s*")


def out_of_office(text: str) -> bool:
    """Does the text state an absence ("I am out of the office", "on my return")? For
    replykind.py: a robot's acknowledgement is not an out-of-office."""
    return bool(text and _AWAY.search(fold(visible_text(text[:20000]))))


def _oof_body(text: str) -> str | None:
    """An out-of-office by its words: a statement of absence or a robot saying so that opens
    the message (after a greeting or a thank-you), or one found with a second sign (when they
    will be back, where to go when urgent). A person's answer that mentions "I was out of the
    office", or "I am away next week" below its first words, is neither."""
    if not text:
        return None
    body = fold(visible_text(text[:20000]))
    opening = body
    for _ in range(4):  # greetings and thanks, in any order
        opening = _OPENING.sub("", opening, count=1)
    for pattern in (_AWAY, _ROBOT):
        m = pattern.match(opening)
        if m:
            return f"it opens as an out-of-office does ({m.group(0)[:60]!r})"
    away, robot = _AWAY.search(body), _ROBOT.search(body)
    if not (away or robot):
        return None
    back = _RETURN.search(body)
    if back or (away and robot):
        first = away or robot
        second = back or robot
        assert first is not None and second is not None
        return (f"out-of-office words ({first.group(0)[:40]!r} and "
                f"{second.group(0)[:40]!r})")
    return None
