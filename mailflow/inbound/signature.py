"""The one signature rule (README, "Replies"): what goes and what stays around a reply.

Goes: a mail gateway's warning banner at the top ("CAUTION: This email originated from
outside the organisation"); everything below a "-- " line; device lines ("Sent from my
iPhone", "Enviado do meu iPhone", "Отправлено с iPhone", "Get Outlook for Android", in
many languages); trailing legal disclaimers and confidentiality notices (and the rules,
links and logos among them); a closing that goes on into a signature block (job title,
organisation, phones, address, web: the council's standard block), sign-off included, and
that block at the end without a sign-off.
Stays: a short sign-off: the sign-off and at most a name under it ("Thanks, Alex",
"Thanks,\nAlex", "Kind regards,\nJane Smith"), a lone "Thanks", anything after a sign-off
that reads as text (a P.S.), and a resident's own name, address and phone.
"""

from __future__ import annotations

import re

_DELIMITER = re.compile(r"^--\s?$")
# "<verb> <device>": the verb in many languages, then a phone, tablet or mail app.
_DEVICE_VERB = (
    r"sent (?:from|with|via|using)|envoy[ée] (?:de|depuis)|"
    r"von meinem|gesendet (?:von|mit)|enviado (?:desde|do|de|con)|wys[łl]ane z|"
    r"anfonwyd o|verzonden (?:vanaf|met|van)|verstuurd (?:vanaf|met)|sendt fra|"
    r"skickat från|inviato da|отправлено (?:с|из|со)|надіслано (?:з|із)|"
    r"lähetetty|odesláno z|elküldve|gönderen|trimis de pe|poslano (?:s|z|iz)"
)
_DEVICE_WORDS = (
    r"iphone|ipad|android|galaxy|samsung|blackberry|huawei|xiaomi|pixel|nokia|sony|"
    r"outlook|mail (?:for|für|pour|para|voor|til|för) windows|windows mail|yahoo|aol|"
    r"proton ?mail|gmail|mail\.ru|почты|mobile|mobil|smartphone|телефона|tablet"
)
_MY = r"my|mijn|min|meinem|mon|mi|meu|mojego|mio|mój"
_DEVICE_LINE = re.compile(
    rf"^\s*(?:{_DEVICE_VERB})\b[^\n]{{0,60}}?\b(?:{_DEVICE_WORDS}|(?:{_MY})\b)[^\n]{{0,60}}$"
    r"|^\s*sent from my \S+(?:[ \t]+[^\s,;]+){0,4}\s*$|^\s*von meinem \S.{0,40} gesendet\.?\s*$"
    r"|^\s*(?:get|obtenir|hent|skaffa|scarica|baixe|descargar|holen sie sich) outlook\b.{0,60}$"
    r"|^\s*outlook (?:für|voor) \S+ (?:beziehen|downloaden)\b.{0,40}$",
    re.IGNORECASE,
)
_DISCLAIMER = re.compile(
    r"this (?:e-?mail|message|communication)(?: and| \(and| including)? (?:any|its)"
    r" (?:attach|files)"
    r"|this e-?mail (?:is|may be|has been|was) (?:confidential|scanned|checked|intended|sent)"
    r"|the (?:information|contents?) (?:in|of|contained in) this (?:e-?mail|message|communication)"
    r"|any (?:views|opinions)(?: or opinions)? (?:expressed|presented)"
    r"|this e-?mail has been (?:scanned|checked)|has been scanned for"
    r"|please consider the environment|think before you print|save a tree"
    r"|if you (?:are not|have received this) (?:the intended|(?:e-?mail|message) in error)"
    r"|confidentiality (?:notice|statement)|^disclaimer\b|^ymwadiad\b|^caution:"
    r"|(?:e-?mails?|communications?) (?:sent to and from|with) (?:this|the)"
    r" (?:council|organisation|organization|authority) (?:may|will) be (?:monitored|recorded)"
    r"|how we (?:use|process|handle) your (?:personal )?(?:data|information)|privacy notice"
    r"|mae'r (?:neges|e-?bost) (?:e-?bost )?(?:hon|hwn)|yn gyfrinachol"
    r"|unless (?:expressly|otherwise) stated|protectively marked"
    # de, fr, nl, es, pt, it, da/no/sv, pl, ru
    r"|vertrauliche informationen|nicht der (?:richtige|beabsichtigte) (?:adressat|empfänger)"
    r"|diese (?:e-?mail|nachricht) (?:ist|enthält|kann) vertraulich"
    r"|(?:ce|le présent) (?:message|courriel|e-?mail)[^.\n]{0,60}confidenti"
    r"|destinés? exclusivement|si vous (?:n'êtes pas|avez reçu ce)"
    r"|(?:dit|deze) (?:e-?mail)?bericht[^.\n]{0,40}(?:uitsluitend|vertrouwelijk)"
    r"|onterecht (?:heeft )?ontvang|bestemd voor de geadresseerde"
    r"|(?:este|el presente) (?:mensaje|correo)[^.\n]{0,60}confidencial"
    r"|esta mensagem[^.\n]{0,60}confidencia|(?:questo|il presente) (?:messaggio|e-?mail)"
    r"[^.\n]{0,60}riservat|denne (?:e-?mail|e-?post|meddelelse)[^.\n]{0,60}fortrolig"
    r"|detta (?:e-?post)?meddelande[^.\n]{0,60}konfidentiell|ta wiadomość[^.\n]{0,60}poufn"
    r"|(?:это|данное) (?:письмо|сообщение)[^.\n]{0,60}конфиденциальн",
    re.IGNORECASE,
)
# Lines that sit among disclaimers and signatures: rules, bare links, logos, social prompts.
_FOOTER_JUNK = re.compile(
    r"^\W*(?:[_=*-]+|https?://\S+|www\.\S+|\[cid:[^\]]*\]|\[image[^\]]*\]|follow us\b.{0,60}"
    r"|(?:twitter|facebook|instagram|linkedin|x)\b.{0,60})\W*$",
    re.IGNORECASE,
)
_SIGN_OFF_WORDS = (
    r"(?:with\s+)?(?:kind|kindest|best|warm|warmest|many|with)?\s*(?:regards|wishes|thanks)"
    r"|thanks(?: again| very much| so much)?|thank you(?: very much)?|many thanks|best"
    r"|yours(?: sincerely| faithfully| truly)?|sincerely|cheers|all the best|take care"
    r"|regards|cofion(?: cynnes| gorau)?|yn gywir|diolch(?: yn fawr)?"
    r"|pozdrawiam(?: serdecznie)?|z poważaniem|z wyrazami szacunku"
    r"|(?:bien )?cordialement|bien à vous|salutations(?: distinguées)?"
    r"|mit freundlichen grüßen|freundliche grüße|viele grüße|beste grüße|liebe grüße"
    r"|(?:mit )?(?:besten |herzlichen )?grüßen|mfg|lg"
    r"|(?:un )?saludos?(?: cordiales)?|atentamente|cordialmente|un abrazo"
    r"|atenciosamente|cumprimentos|melhores cumprimentos|abraços?"
    r"|cordiali saluti|distinti saluti|saluti|a presto"
    r"|met vriendelijke groet(?:en)?|vriendelijke groet(?:en)?|groet(?:en|jes)?|mvg"
    r"|med venlig hilsen|venlig hilsen|mvh|med vennlig hilsen|vennlig hilsen|hilsen"
    r"|med vänliga hälsningar|vänliga hälsningar|hälsningar|mvh"
    r"|с уважением|с наилучшими пожеланиями|всего доброго|з повагою|з найкращими побажаннями"
)
_SIGN_OFF = re.compile(rf"^\s*(?:{_SIGN_OFF_WORDS})\s*[,.!]?\s*$", re.IGNORECASE)
_SIGN_OFF_NAMED = re.compile(rf"^\s*(?:{_SIGN_OFF_WORDS})\s*[,.!-]\s*(?P<name>\S.*)$",
                             re.IGNORECASE)
# Mail gateways' warnings put above the text: "CAUTION: This email originated from outside…".
_BANNER = re.compile(
    r"^\W*(?:\[?external\]?|caution|warning|attention|external (?:e-?mail|sender))\b[^\n]{0,40}"
    r"\b(?:originated|outside|external|do not click|unknown sender)",
    re.IGNORECASE,
)
_SHORT_LINE = 72  # a signature line (name, title, phone) is short
_MAX_SIGNATURE_LINES = 8


def is_device_line(line: str) -> bool:
    return bool(_DEVICE_LINE.match(line)) and len(line.split()) <= 12


def is_delimiter(line: str) -> bool:
    return bool(_DELIMITER.match(line))


def drop_banner(lines: list[str]) -> list[str]:
    """A gateway's warning paragraph at the very top goes."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or not _BANNER.match(lines[first]):
        return lines
    end = next((i for i in range(first, len(lines)) if not lines[i].strip()), len(lines))
    return lines[end:] if end - first <= 3 else lines


def drop_signature(lines: list[str]) -> list[str]:
    """Everything below "-- " goes, and device lines wherever they are."""
    out: list[str] = []
    for line in lines:
        if is_delimiter(line) and any(x.strip() for x in out):
            break
        if is_device_line(line):
            continue
        out.append(line)
    return out


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paras: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            paras.append(current)
            current = []
    if current:
        paras.append(current)
    return paras


def drop_disclaimers(lines: list[str]) -> list[str]:
    """Drop trailing paragraphs that are disclaimers (and the rules and links among them)."""
    paras = _paragraphs(lines)
    keep = len(paras)
    found = False
    while keep > 1:
        para = paras[keep - 1]
        if _DISCLAIMER.search(" ".join(para)):
            found = True
        elif not all(_FOOTER_JUNK.match(line) for line in para):
            break
        keep -= 1
    if not found:
        return lines
    return [line for para in paras[:keep] for line in para + [""]]


def trim_sign_off(lines: list[str]) -> list[str]:
    """A short closing (a sign-off and at most a name under it) stays; a closing that goes on
    into a signature block (title, organisation, phone, address) goes whole, sign-off too.
    With no sign-off, the council's standard block at the end goes."""
    content = [i for i, line in enumerate(lines) if line.strip()]
    for pos in range(len(content) - 1, -1, -1):
        i = content[pos]
        named = _named_sign_off(lines[i])
        if not (named or _SIGN_OFF.match(lines[i])):
            continue
        block = [lines[j] for j in content[pos + 1 :]]
        if not block or not _looks_like_signature(block):
            return lines  # nothing below, or real text below (a P.S.): leave it all
        if not named and len(block) == 1 and _is_name(block[0]):
            return lines  # "Thanks," / "Alex": a short sign-off
        return lines[:i]
    return trim_signature_block(lines)


def _is_name(line: str) -> bool:
    text = line.strip()
    return len(text.split()) <= 4 and not any(c.isdigit() for c in text) \
        and not _CONTACT.search(text) and not _ORGANISATION.search(text)


# A contact line of a signature block: a labelled phone or email, a UK number, a link.
_CONTACT = re.compile(
    r"^\W*(?:t|tel|telephone|phone|ph|m|mob|mobile|e|email|e-mail|w|web|fax|ff[oô]n|"
    r"ebost|e-bost|direct(?: line| dial)?|switchboard)\s*[:.|]"
    r"|(?:\+44\s?|\b0)\d{2,4}[\s-]?\d{3}[\s-]?\d{3,4}\b|www\.|https?://|@",
    re.IGNORECASE,
)


# An organisation's line in a signature block: a council, a service, a job title, a company.
_ORGANISATION = re.compile(
    r"\b(?:council|cyngor|comhairle|borough|county|authority|department|directorate|services?"
    r"|team|officer|manager|director|assistant|advisor|adviser|co-?ordinator|head of|ltd"
    r"|limited|plc|llp|housing association|trust)\b|\.gov\.uk|\.gov\.scot|\.gov\.wales",
    re.IGNORECASE,
)


def trim_signature_block(lines: list[str]) -> list[str]:
    """With no sign-off: a last paragraph of name, title, organisation and contact lines (the
    council's standard block) goes; a resident's own name, address and phone stay."""
    paras = [i for i, line in enumerate(lines) if line.strip() and (i == 0 or not
                                                                       lines[i - 1].strip())]
    if len(paras) < 2:
        return lines  # the block would be all the text
    start = paras[-1]
    block = [line for line in lines[start:] if line.strip()]
    if not 3 <= len(block) <= _MAX_SIGNATURE_LINES or not _looks_like_signature(block):
        return lines
    name = block[0].strip()
    if len(name.split()) > 4 or any(c.isdigit() for c in name) or _CONTACT.search(name):
        return lines
    if not any(_CONTACT.search(line) for line in block[1:]) \
            or not any(_ORGANISATION.search(line) for line in block[1:]):
        return lines
    return lines[:start]


def _named_sign_off(line: str) -> bool:
    """"Thanks, Alex" or "Regards - Jane Smith": a sign-off with the name on its line."""
    m = _SIGN_OFF_NAMED.match(line)
    if not m:
        return False
    words = m.group("name").strip().rstrip(".").split()
    return 0 < len(words) <= 3 and all(w[:1].isupper() and not any(c.isdigit() for c in w)
                                       for w in words)


def _looks_like_signature(block: list[str]) -> bool:
    """Name, title, phone...: a few short lines, none of them a sentence."""
    if len(block) > _MAX_SIGNATURE_LINES or len(block[0].split()) > 6:
        return False
    for line in block:
        text = line.strip()
        if len(text) > _SHORT_LINE or text.endswith(("?", "!")):
            return False
        if text.endswith(".") and len(text.split()) > 3:
            return False  # "I will send photos tomorrow." is content, not a job title
    return True
