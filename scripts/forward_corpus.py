"""Write the generated part of tests/corpus/forwards/ (files named `g_*`).

Each message is our own text, laid out the way one client in one language lays out a forward
(see tests/corpus/SOURCES.md for what each layout is modelled on). The expected values in the
sidecar JSON come from the values we put in, never from mailflow's reading of the result.

Usage: python scripts/forward_corpus.py   (rewrites every g_* file; deterministic)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from html import escape
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "forwards"
MEMBER = ("Cllr Bob Jones", "cllr.bobjones@gmail.com")
INTERNAL = ["anytown.gov.uk"]
NOTE = "Please can you look into this for the resident. Bob"

# Two dates per language: Monday 23 November 2026 10:02 and Tuesday 3 March 2026 15:47.
DATES = [(2026, 11, 23, 10, 2), (2026, 3, 3, 15, 47)]


@dataclass
class Lang:
    code: str
    labels: tuple[str, str, str, str, str, str]  # from, sent (Outlook), date, to, cc, subject
    months: tuple[str, str]  # November, March as written in a date
    long: str  # a long date: {dow} {d} {month} {y}
    dows: tuple[str, str]  # Monday, Tuesday
    at: str  # "at" between date and time (Apple, Gmail)
    original: str  # Outlook's "-----Original Message-----"
    forwarded: str  # Gmail / Thunderbird / Yahoo "Forwarded message"
    begin: str  # Apple Mail's "Begin forwarded message:"
    wrote: str  # Outlook 2019's attribution: {date} {name} {addr}
    prefix: str  # the forward prefix Outlook puts on the subject
    numeric: str  # numeric date: {dd} {mm} {y}
    sender: tuple[str, str]
    subject: str
    body: str
    colon: str = ":"  # French puts a space before it


L = [
    Lang("en", ("From", "Sent", "Date", "To", "Cc", "Subject"), ("November", "March"),
         "{dow}, {d} {month} {y}", ("Monday", "Tuesday"), "at", "Original Message",
         "Forwarded message", "Begin forwarded message:", 'On {date}, "{name}" <{addr}> wrote:',
         "FW:", "{dd}/{mm}/{y}", ("Margaret O'Neill", "maggie.oneill@example.com"),
         "Fly-tipping behind the shops", "There is a pile of rubbish behind the shops again."),
    Lang("cy", ("Oddi wrth", "Anfonwyd", "Dyddiad", "At", "Cc", "Pwnc"), ("Tachwedd", "Mawrth"),
         "{dow}, {d} {month} {y}", ("Dydd Llun", "Dydd Mawrth"), "am", "Neges Wreiddiol",
         "Neges wedi'i hanfon ymlaen", "Dechrau'r neges a anfonwyd ymlaen:",
         'Ar {date}, ysgrifennodd "{name}" <{addr}>:', "YM:", "{dd}/{mm}/{y}",
         ("Siân Llewelyn", "sian.llewelyn@example.cymru"), "Goleuadau stryd wedi torri",
         "Mae'r goleuadau stryd ar Heol y Bont wedi torri ers wythnos."),
    Lang("gd", ("Bho", "Air a chur", "Ceann-là", "Gu", "Cc", "Cuspair"),
         ("an t-Samhain", "am Màrt"), "{dow}, {d} {month} {y}", ("DiLuain", "DiMàirt"), "aig",
         "An teachdaireachd thùsail", "Teachdaireachd air a sìneadh air adhart",
         "Toiseach na teachdaireachd a chaidh a shìneadh air adhart:",
         'Air {date}, sgrìobh "{name}" <{addr}>:', "FW:", "{dd}/{mm}/{y}",
         ("Mòrag NicLeòid", "morag.nicleoid@example.scot"), "Rathad briste",
         "Tha toll mòr anns an rathad faisg air an sgoil."),
    Lang("fr", ("De", "Envoyé", "Date", "À", "Cc", "Objet"), ("novembre", "mars"),
         "{dow} {d} {month} {y}", ("lundi", "mardi"), "à", "Message d'origine",
         "Message transféré", "Début du message réexpédié :",
         'Le {date}, « {name} » <{addr}> a écrit :', "TR :", "{dd}/{mm}/{y}",
         ("Élodie Durand", "elodie.durand@example.fr"), "Éclairage public en panne",
         "Bonjour, l'éclairage de la rue est en panne depuis lundi.", colon=" :"),
    Lang("de", ("Von", "Gesendet", "Datum", "An", "Cc", "Betreff"), ("November", "März"),
         "{dow}, {d}. {month} {y}", ("Montag", "Dienstag"), "um", "Ursprüngliche Nachricht",
         "Weitergeleitete Nachricht", "Anfang der weitergeleiteten Nachricht:",
         'Am {date} schrieb "{name}" <{addr}>:', "WG:", "{dd}.{mm}.{y}",
         ("Jürgen Müller", "juergen.mueller@example.de"), "Schlagloch in der Hauptstraße",
         "Guten Tag, in der Hauptstraße ist ein tiefes Schlagloch."),
    Lang("nl", ("Van", "Verzonden", "Datum", "Aan", "CC", "Onderwerp"), ("november", "maart"),
         "{dow} {d} {month} {y}", ("maandag", "dinsdag"), "om", "Oorspronkelijk bericht",
         "Doorgestuurd bericht", "Begin doorgestuurd bericht:",
         "Op {date} heeft {name} <{addr}> geschreven:", "FW:", "{dd}-{mm}-{y}",
         ("Sanne de Vries", "sanne.devries@example.nl"), "Kapotte stoeptegels",
         "Beste raadslid, de stoeptegels voor ons huis zijn kapot."),
    Lang("es", ("De", "Enviado el", "Fecha", "Para", "CC", "Asunto"), ("noviembre", "marzo"),
         "{dow}, {d} de {month} de {y}", ("lunes", "martes"), "a las", "Mensaje original",
         "Mensaje reenviado", "Inicio del mensaje reenviado:",
         'El {date}, "{name}" <{addr}> escribió:', "RV:", "{dd}/{mm}/{y}",
         ("José Martínez", "jose.martinez@example.es"), "Ruido de la obra",
         "Hola, la obra de al lado hace ruido desde las seis de la mañana."),
    Lang("pt", ("De", "Enviada", "Data", "Para", "Cc", "Assunto"), ("novembro", "março"),
         "{dow}, {d} de {month} de {y}", ("segunda-feira", "terça-feira"), "às",
         "Mensagem original", "Mensagem reencaminhada", "Início da mensagem reencaminhada:",
         'Em {date}, "{name}" <{addr}> escreveu:', "ENC:", "{dd}/{mm}/{y}",
         ("João Gonçalves", "joao.goncalves@example.pt"), "Contentor do lixo partido",
         "Olá, o contentor do lixo da nossa rua está partido."),
    Lang("pt-BR", ("De", "Enviado", "Data", "Para", "Cc", "Assunto"), ("novembro", "março"),
         "{dow}, {d} de {month} de {y}", ("segunda-feira", "terça-feira"), "às",
         "Mensagem original", "Mensagem encaminhada", "Início da mensagem encaminhada:",
         'Em {date}, "{name}" <{addr}> escreveu:', "ENC:", "{dd}/{mm}/{y}",
         ("Ana Carolina Souza", "ana.souza@example.com.br"), "Árvore caída na calçada",
         "Boa tarde, uma árvore caiu na calçada em frente à escola."),
    Lang("it", ("Da", "Inviato", "Data", "A", "Cc", "Oggetto"), ("novembre", "marzo"),
         "{dow} {d} {month} {y}", ("lunedì", "martedì"), "alle", "Messaggio originale",
         "Messaggio inoltrato", "Inizio messaggio inoltrato:",
         'Il giorno {date} "{name}" <{addr}> ha scritto:', "I:", "{dd}/{mm}/{y}",
         ("Giulia Ferrari", "giulia.ferrari@example.it"), "Parcheggio abusivo",
         "Buongiorno, ogni sera ci sono auto parcheggiate sul marciapiede."),
    Lang("pl", ("Od", "Wysłano", "Data", "Do", "DW", "Temat"), ("listopada", "marca"),
         "{dow}, {d} {month} {y}", ("poniedziałek", "wtorek"), "o", "Oryginalna wiadomość",
         "Wiadomość przekazana dalej", "Początek przekazywanej wiadomości:",
         'Dnia {date} „{name}” <{addr}> napisał:', "PD:", "{dd}.{mm}.{y}",
         ("Małgorzata Wiśniewska", "m.wisniewska@example.pl"), "Zepsuta latarnia",
         "Dzień dobry, latarnia przed blokiem nie świeci od tygodnia."),
    Lang("cs", ("Od", "Odesláno", "Datum", "Komu", "Kopie", "Předmět"), ("listopadu", "března"),
         "{dow} {d}. {month} {y}", ("pondělí", "úterý"), "v", "Původní zpráva",
         "Přeposlaná zpráva", "Začátek přeposílané zprávy:",
         "Dne {date}, {name} <{addr}> napsal(a):", "FW:", "{d}.{m}.{y}",
         ("Tomáš Dvořák", "tomas.dvorak@example.cz"), "Rozbitý chodník",
         "Dobrý den, chodník u školy je už měsíc rozbitý."),
    Lang("sk", ("Od", "Odoslané", "Dátum", "Komu", "Kópia", "Predmet"), ("novembra", "marca"),
         "{dow} {d}. {month} {y}", ("pondelok", "utorok"), "o", "Pôvodná správa",
         "Preposlaná správa", "Začiatok preposlanej správy:",
         "{date} používateľ {name} (<{addr}>) napísal:", "FW:", "{d}.{m}.{y}",
         ("Zuzana Horváthová", "zuzana.horvathova@example.sk"), "Nevyvezený odpad",
         "Dobrý deň, odpad na našej ulici nebol vyvezený dva týždne."),
    Lang("hu", ("Feladó", "Elküldve", "Dátum", "Címzett", "Másolat", "Tárgy"),
         ("november", "március"), "{y}. {month} {d}., {dow}", ("hétfő", "kedd"), "",
         "Eredeti üzenet", "Továbbított üzenet", "Továbbított levél kezdete:",
         "{date} időpontban {name} (<{addr}>) ezt írta:", "FW:", "{y}. {mm}. {dd}.",
         ("Kovács Eszter", "kovacs.eszter@example.hu"), "Kátyú az úton",
         "Jó napot, a főúton nagy kátyú van a buszmegálló előtt."),
    Lang("ro", ("De la", "Trimis", "Dată", "Către", "Cc", "Subiect"), ("noiembrie", "martie"),
         "{dow}, {d} {month} {y}", ("luni", "marți"), "la", "Mesaj original",
         "Mesaj redirecționat", "Începe mesajul redirecționat:",
         'La {date}, "{name}" <{addr}> a scris:', "Fw:", "{dd}.{mm}.{y}",
         ("Ioana Popescu", "ioana.popescu@example.ro"), "Groapă în asfalt",
         "Bună ziua, pe strada noastră este o groapă mare în asfalt."),
    Lang("hr", ("Šalje", "Poslano", "Datum", "Prima", "Kopija", "Predmet"),
         ("studenoga", "ožujka"), "{dow}, {d}. {month} {y}.", ("ponedjeljak", "utorak"), "u",
         "Izvorna poruka", "Proslijeđena poruka", "Započni proslijeđenu poruku:",
         '{date}, "{name}" <{addr}> je napisao:', "FW:", "{d}.{m}.{y}.",
         ("Ivana Horvat", "ivana.horvat@example.hr"), "Buka iz kafića",
         "Poštovani, kafić ispod naše zgrade radi glasnu glazbu do dva ujutro."),
    Lang("da", ("Fra", "Sendt", "Dato", "Til", "Cc", "Emne"), ("november", "marts"),
         "{dow} den {d}. {month} {y}", ("mandag", "tirsdag"), "kl.", "Oprindelig meddelelse",
         "Videresendt meddelelse", "Start på videresendt besked:",
         'D. {date} skrev "{name}" <{addr}>:', "VS:", "{dd}.{mm}.{y}",
         ("Søren Jørgensen", "soren.jorgensen@example.dk"), "Ødelagt bænk i parken",
         "Hej, bænken ved legepladsen i parken er ødelagt."),
    Lang("no", ("Fra", "Sendt", "Dato", "Til", "Kopi", "Emne"), ("november", "mars"),
         "{dow} {d}. {month} {y}", ("mandag", "tirsdag"), "kl.", "Opprinnelig melding",
         "Videresendt melding", "Videresendt melding:",
         "{name} <{addr}> skrev følgende den {date}:", "VS:", "{dd}.{mm}.{y}",
         ("Kari Nordmann", "kari.nordmann@example.no"), "Snømåking på fortauet",
         "Hei, fortauet i gaten vår er ikke måkt på en uke."),
    Lang("sv", ("Från", "Skickat", "Datum", "Till", "Kopia", "Ämne"), ("november", "mars"),
         "den {d} {month} {y}", ("måndag", "tisdag"), "kl.", "Ursprungligt meddelande",
         "Vidarebefordrat meddelande", "Vidarebefordrat mejl:",
         'Den {date} skrev "{name}" <{addr}> följande:', "VB:", "{y}-{mm}-{dd}",
         ("Åsa Lindström", "asa.lindstrom@example.se"), "Trasig gatlykta",
         "Hej, gatlyktan utanför vårt hus har varit trasig i en vecka."),
    Lang("fi", ("Lähettäjä", "Lähetetty", "Päivämäärä", "Vastaanottaja", "Kopio", "Aihe"),
         ("marraskuuta", "maaliskuuta"), "{dow} {d}. {month} {y}", ("maanantai", "tiistai"),
         "klo", "Alkuperäinen viesti", "Välitetty viesti", "Välitetty viesti alkaa:",
         "{name} <{addr}> kirjoitti {date}:", "VL:", "{d}.{m}.{y}",
         ("Mikko Virtanen", "mikko.virtanen@example.fi"), "Roskat puistossa",
         "Hei, puistossa on paljon roskia leikkipaikan vieressä."),
    Lang("et", ("Saatja", "Saadetud", "Kuupäev", "Adressaat", "Koopia", "Teema"),
         ("november", "märts"), "{dow}, {d}. {month} {y}", ("esmaspäev", "teisipäev"), "kell",
         "Algne kiri", "Edasi saadetud kiri", "Algus edastatud kirjale:",
         '{date} kirjutas "{name}" <{addr}>:', "FW:", "{dd}.{mm}.{y}",
         ("Kadri Tamm", "kadri.tamm@example.ee"), "Katkine tänavavalgusti",
         "Tere, meie tänava valgusti ei põle juba nädal aega."),
    Lang("tr", ("Kimden", "Gönderildi", "Tarih", "Kime", "Bilgi", "Konu"), ("Kasım", "Mart"),
         "{d} {month} {y} {dow}", ("Pazartesi", "Salı"), "", "Özgün İleti",
         "İletilmiş Mesaj", "İleti başlangıcı:",
         '"{name}" <{addr}>, {date} tarihinde şunu yazdı:', "İLT:", "{dd}.{mm}.{y}",
         ("Ayşe Yılmaz", "ayse.yilmaz@example.com.tr"), "Çöpler toplanmadı",
         "Merhaba, sokağımızdaki çöpler iki haftadır toplanmadı."),
    Lang("ru", ("От", "Отправлено", "Дата", "Кому", "Копия", "Тема"), ("ноября", "марта"),
         "{dow}, {d} {month} {y} г.", ("понедельник", "вторник"), "в", "Исходное сообщение",
         "Пересылаемое сообщение", "Начало переадресованного сообщения:",
         '{date} пользователь "{name}" <{addr}> написал:', "FW:", "{dd}.{mm}.{y}",
         ("Наталья Иванова", "natalia.ivanova@example.ru"), "Яма на дороге",
         "Здравствуйте, на нашей улице большая яма на дороге."),
    Lang("uk", ("Від", "Надіслано", "Дата", "Кому", "Копія", "Тема"), ("листопада", "березня"),
         "{dow}, {d} {month} {y} р.", ("понеділок", "вівторок"), "о", "Оригінальне повідомлення",
         "Переслане повідомлення", "Початок листа, що пересилається:",
         '{date} користувач "{name}" <{addr}> написав:', "FW:", "{dd}.{mm}.{y}",
         ("Олена Шевченко", "olena.shevchenko@example.com.ua"), "Не працює ліфт",
         "Доброго дня, у нашому будинку вже тиждень не працює ліфт."),
    Lang("ja", ("差出人", "送信日時", "日付", "宛先", "CC", "件名"), ("11月", "3月"),
         "{y}年{month}{d}日({dow})", ("月", "火"), "", "元のメッセージ",
         "転送されたメッセージ", "転送されたメッセージ:",
         '{date}、"{name}" <{addr}> のメッセージ:', "FW:", "{y}/{mm}/{dd}",
         ("佐藤 花子", "hanako.sato@example.jp"), "騒音について",
         "お世話になっております。隣の工事の騒音がひどいです。"),
]


def date_parts(lang: Lang, which: int) -> dict[str, str]:
    y, m, d, hh, mm = DATES[which]
    return {
        "y": str(y), "m": str(m), "d": str(d), "dd": f"{d:02d}", "mm": f"{m:02d}",
        "month": lang.months[which], "dow": lang.dows[which], "time": f"{hh:02d}:{mm:02d}",
    }


def iso(which: int, zone: str = "") -> str:
    y, m, d, hh, mm = DATES[which]
    return f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:00{zone}"


def long_date(lang: Lang, which: int) -> str:
    return lang.long.format(**date_parts(lang, which))


def numeric(lang: Lang, which: int) -> str:
    p = date_parts(lang, which)
    return lang.numeric.format(**p) + " " + p["time"]


@dataclass
class Case:
    name: str
    language: str
    subject: str  # the forward's own subject
    body: str  # text of the forward (or HTML when html is True)
    expected: dict
    html: bool = False
    sender: tuple[str, str] = MEMBER
    attach: EmailMessage | None = None
    attach_type: str = "message/rfc822"


def label(lang: Lang, i: int) -> str:
    return lang.labels[i] + lang.colon


def expect(lang: Lang, which: int, *, zone: str = "", note: str = NOTE, to: list[str] | None
           = None, cc: list[str] | None = None, description: str, attached: bool = False,
           name: str | None = None, address: str | None = None,
           subject: str | None = None) -> dict:
    out = {
        "description": description,
        "language": lang.code,
        "is_forward": True,
        "sender_name": name if name is not None else lang.sender[0],
        "sender_address": address or lang.sender[1],
        "subject": subject or lang.subject,
        "date": iso(which, zone) if which >= 0 else None,
        "body_starts": lang.body[:30],
        "note": note,
        "attached": attached,
        "internal_domains": INTERNAL,
    }
    if to is not None:
        out["to"] = to
    if cc is not None:
        out["cc"] = cc
    return out


def who(lang: Lang) -> str:
    return f"{lang.sender[0]} <{lang.sender[1]}>"


def outlook(lang: Lang) -> Case:
    """Outlook desktop 2013-2016 (HTML converted to text): no separator, Sent label."""
    p = date_parts(lang, 0)
    block = (
        f"{label(lang, 0)} {lang.sender[0]} <{lang.sender[1]}>\n"
        f"{label(lang, 1)} {long_date(lang, 0)} {p['time']}\n"
        f"{label(lang, 3)} {MEMBER[0]} <{MEMBER[1]}>\n"
        f"{label(lang, 4)} Ward Office <ward.office@anytown.gov.uk>\n"
        f"{label(lang, 5)} {lang.subject}\n\n{lang.body}\n\nKind regards\n"
    )
    return Case(f"g_outlook_{lang.code}", lang.code, f"{lang.prefix} {lang.subject}",
                f"{NOTE}\n\n{block}",
                expect(lang, 0, to=[MEMBER[1]], cc=["ward.office@anytown.gov.uk"],
                       description=f"Outlook desktop, {lang.code}: From/Sent/To/Cc/Subject"))


def outlook_original(lang: Lang) -> Case:
    """Outlook in plain-text mode: "-----Original Message-----", [mailto:] addresses."""
    p = date_parts(lang, 1)
    block = (
        f"-----{lang.original}-----\n"
        f"{label(lang, 0)} {lang.sender[0]} [mailto:{lang.sender[1]}]\n"
        f"{label(lang, 1)} {numeric(lang, 1)}\n"
        f"{label(lang, 3)} {MEMBER[0]}\n"
        f"{label(lang, 5)} {lang.subject}\n\n{lang.body}\n"
    )
    assert p
    return Case(f"g_outlook_plain_{lang.code}", lang.code, f"{lang.prefix} {lang.subject}",
                f"{block}", expect(lang, 1, note="",
                description=f"Outlook plain text, {lang.code}: localised Original Message"))


def gmail(lang: Lang, html: bool) -> Case:
    """Gmail: dashed "Forwarded message" line, From label localised, Date/Subject/To."""
    p = date_parts(lang, 0)
    sep = f"---------- {lang.forwarded} ---------"
    date = f"{long_date(lang, 0)} {lang.at} {p['time']}".replace("  ", " ")
    lines = [sep, f"{label(lang, 0)} {lang.sender[0]} <{lang.sender[1]}>", f"Date: {date}",
             f"Subject: {lang.subject}", f"To: {MEMBER[0]} <{MEMBER[1]}>"]
    if html:
        body = (
            f'<div dir="ltr">{escape(NOTE)}<br><br><div class="gmail_quote">'
            f'<div dir="ltr" class="gmail_attr">{escape(sep)}<br>'
            + "<br>".join(escape(x) for x in lines[1:])
            + f'<br></div><br><br><div dir="ltr">{escape(lang.body)}</div></div></div>'
        )
    else:
        body = f"{NOTE}\n\n" + "\n".join(lines) + f"\n\n\n{lang.body}\n"
    kind = "HTML only" if html else "text"
    return Case(f"g_gmail_{'html_' if html else ''}{lang.code}", lang.code,
                f"Fwd: {lang.subject}", body,
                expect(lang, 0, to=[MEMBER[1]], description=f"Gmail {kind}, {lang.code}"),
                html=html)


def apple(lang: Lang, ios: bool) -> Case:
    """Apple Mail: "Begin forwarded message:" and a fully localised block."""
    p = date_parts(lang, 1)
    date = f"{long_date(lang, 1)} {lang.at} {p['time']}".replace("  ", " ")
    block = (
        f"{lang.begin}\n\n"
        f"{label(lang, 0)} {lang.sender[0]} <{lang.sender[1]}>\n"
        f"{label(lang, 5)} {lang.subject}\n"
        f"{label(lang, 2)} {date}\n"
        f"{label(lang, 3)} {MEMBER[1]}\n\n{lang.body}\n"
    )
    top = "See below\n\nSent from my iPhone\n\n" if ios else ""
    return Case(f"g_apple_{'ios' if ios else 'mac'}_{lang.code}", lang.code,
                f"Fwd: {lang.subject}", top + block,
                expect(lang, 1, note="See below" if ios else "", to=[MEMBER[1]],
                       description=f"Apple Mail {'iOS' if ios else 'macOS'}, {lang.code}"))


def thunderbird(lang: Lang) -> Case:
    """Thunderbird: "-------- Forwarded Message --------" and a tab-aligned table."""
    block = (
        f"-------- {lang.forwarded} --------\n"
        f"{label(lang, 5)}\t{lang.subject}\n"
        f"{label(lang, 2)}\t{numeric(lang, 0)}\n"
        f"{label(lang, 0)}\t{lang.sender[0]} <{lang.sender[1]}>\n"
        f"{label(lang, 3)}\t{MEMBER[0]} <{MEMBER[1]}>\n\n\n{lang.body}\n"
    )
    return Case(f"g_thunderbird_{lang.code}", lang.code, f"Fwd: {lang.subject}",
                f"{NOTE}\n\n{block}",
                expect(lang, 0, to=[MEMBER[1]], description=f"Thunderbird, {lang.code}"))


def yahoo(lang: Lang) -> Case:
    """Yahoo: the whole header block run together on the separator's line."""
    p = date_parts(lang, 1)
    line = (
        f"   ----- {lang.forwarded} ----- {label(lang, 0)} {lang.sender[0]} <{lang.sender[1]}>"
        f"{label(lang, 3)} \"{MEMBER[1]}\" <{MEMBER[1]}>"
        f"{label(lang, 1)} {long_date(lang, 1)}, {p['time']}:00 GMT"
        f"{label(lang, 5)} {lang.subject}\n {lang.body}\n"
    )
    return Case(f"g_yahoo_{lang.code}", lang.code, f"Fw: {lang.subject}", f"{NOTE}\n\n{line}",
                expect(lang, 1, zone="+00:00", to=[MEMBER[1]],
                       description=f"Yahoo, {lang.code}: header block on one line"))


def outlook2019(lang: Lang) -> Case:
    """Outlook 2019 / for Mac: an attribution line and the original indented by 4 spaces."""
    date = numeric(lang, 0)
    line = lang.wrote.format(date=date, name=lang.sender[0], addr=lang.sender[1])
    body = "\n".join("    " + x if x else "" for x in [lang.body, "", "Thank you"])
    return Case(f"g_outlook2019_{lang.code}", lang.code, f"{lang.prefix} {lang.subject}",
                f"{NOTE}\n\n{line}\n\n{body}\n",
                expect(lang, 0, description=f"Outlook 2019, {lang.code}: 'On …, \"Name\" <addr> "
                       "wrote:' with the original indented"))


def owa(lang: Lang) -> Case:
    """New Outlook / OWA: an underscore rule, then From/Sent/To/Subject (HTML only)."""
    p = date_parts(lang, 1)
    lines = [f"{label(lang, 0)} {lang.sender[0]} <{lang.sender[1]}>",
             f"{label(lang, 1)} {long_date(lang, 1)} {p['time']}",
             f"{label(lang, 3)} {MEMBER[0]} <{MEMBER[1]}>", f"{label(lang, 5)} {lang.subject}"]
    html = (
        "<html><body><div>" + escape(NOTE) + "</div><div><br></div>"
        '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
        + "<br>".join(f"<b>{escape(x.split(':', 1)[0])}:</b>{escape(x.split(':', 1)[1])}"
                      for x in lines)
        + f"</div><div><br></div><div>{escape(lang.body)}</div></body></html>"
    )
    return Case(f"g_owa_{lang.code}", lang.code, f"{lang.prefix} {lang.subject}", html,
                expect(lang, 1, to=[MEMBER[1]], description=f"OWA / new Outlook, {lang.code}"),
                html=True)


# -- English clients and special forms -----------------------------------------------------

EN = L[0]


def special() -> list[Case]:
    cases: list[Case] = []
    sender = ("Priti Shah", "priti.shah@example.org")
    base = {"language": "en", "is_forward": True, "attached": False,
            "internal_domains": INTERNAL, "sender_name": sender[0],
            "sender_address": sender[1], "subject": "Overgrown hedge on Elm Road",
            "body_starts": "The hedge at number 4"}
    text = "The hedge at number 4 blocks the pavement; my son's pushchair cannot pass."

    def add(name: str, fwd_subject: str, body: str, desc: str, *, html: bool = False,
            **over: object) -> None:
        cases.append(Case(name, str(over.get("language", "en")), fwd_subject, body,
                          base | {"description": desc, "note": "", "date": None} | over,
                          html=html))

    add("g_hubspot_en", "Fwd: Overgrown hedge on Elm Road",
        "Logging this one.\n\n---------- Forwarded message ---------\n"
        f"From: {sender[0]} <{sender[1]}>\nDate: Mon, Nov 23, 2026 at 10:02 AM\n"
        "Subject: Overgrown hedge on Elm Road\nTo: <cllr.bobjones@gmail.com>\n\n" + text + "\n",
        "HubSpot (en)", note="Logging this one.", date="2026-11-23T10:02:00")
    add("g_hubspot_ja", "Fwd: Overgrown hedge on Elm Road",
        "---------- メッセージを転送 ---------\n"
        f"送信元：{sender[0]} <{sender[1]}>\n日付：2026年11月23日月曜日 10:02:44 +0000\n"
        "件名：Overgrown hedge on Elm Road\n送信先：cllr.bobjones@gmail.com\n\n" + text + "\n",
        "HubSpot (ja): full-width colons", language="ja", date="2026-11-23T10:02:44+00:00")
    add("g_ionos_en", "Fwd: Overgrown hedge on Elm Road",
        "Hedge again.\n\n> ---------- Original Message ----------\n"
        f"> From: {sender[0]} <{sender[1]}>\n"
        '> To: "cllr.bobjones@gmail.com" <cllr.bobjones@gmail.com>\n'
        "> Date: 11/23/2026 10:02 AM GMT\n> Subject: Overgrown hedge on Elm Road\n>  \n>  \n> "
        + text + "\n",
        "IONOS by 1&1: a quoted Original Message block", note="Hedge again.",
        date="2026-11-23T10:02:00+00:00")
    add("g_missive_en", "Fwd: Overgrown hedge on Elm Road",
        "---------- Forwarded message ----------\n"
        f"From: {sender[0]} <{sender[1]}>\nDate: November 23, 2026 at 10:02 AM\n"
        "To: cllr.bobjones@gmail.com\nCc: Ward Office <ward.office@anytown.gov.uk>\n"
        "Subject: Overgrown hedge on Elm Road\n\n> " + text + "\n>\n> Thanks\n>\n",
        "Missive: the original's body quoted with '> '", date="2026-11-23T10:02:00",
        cc=["ward.office@anytown.gov.uk"])
    add("g_mailmate_en", "Fwd: Overgrown hedge on Elm Road",
        "Forwarded message:\n\n"
        f"> From: {sender[0]} <{sender[1]}>\n> To: cllr.bobjones@gmail.com\n"
        "> Subject: Overgrown hedge on Elm Road\n> Date: Mon, 23 Nov 2026 10:02:00 +0000\n>\n> "
        + text + "\n>\n> Priti\n",
        "MailMate: 'Forwarded message:' and a quoted block", date="2026-11-23T10:02:00+00:00")
    add("g_groupwise_inline_en", "Fwd: Overgrown hedge on Elm Road",
        "Bob - for the casework system.\n\n"
        f">>> {sender[0]} <{sender[1]}> 23/11/2026 10:02 >>>\n" + text + "\n",
        "GroupWise: '>>> Name <addr> date >>>' header", note="Bob - for the casework system.",
        date="2026-11-23T10:02:00")
    add("g_apple_bare_en", "Overgrown hedge on Elm Road",
        "Begin forwarded message:\n\n"
        f"From: {sender[0]} <{sender[1]}>\nSubject: Overgrown hedge on Elm Road\n"
        "Date: 23 November 2026 at 10:02:11 GMT\nTo: Bob Jones <cllr.bobjones@gmail.com>\n\n"
        + text + "\n",
        "Apple Mail, bare 'Begin forwarded message:' and no Fwd: subject",
        date="2026-11-23T10:02:11+00:00")
    add("g_outlook_mobile_en", "FW: Overgrown hedge on Elm Road",
        "For you\n\nGet Outlook for Android\n"
        "________________________________\n"
        f"From: {sender[0]} <{sender[1]}>\nSent: Monday, November 23, 2026 10:02:11 AM\n"
        "To: Bob Jones <cllr.bobjones@gmail.com>\nSubject: Overgrown hedge on Elm Road\n\n"
        + text + "\n",
        "Outlook for Android / iOS", note="For you", date="2026-11-23T10:02:11")
    add("g_outlook_live_en", "Fw: Overgrown hedge on Elm Road",
        "<div>Another one from Elm Road.</div><div id=\"appendonsend\"></div>"
        '<hr style="display:inline-block;width:98%" tabindex="-1">'
        f'<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> {sender[0]} '
        f"&lt;{sender[1]}&gt;<br><b>Sent:</b> 23 November 2026 10:02<br>"
        "<b>To:</b> cllr.bobjones@outlook.com &lt;cllr.bobjones@outlook.com&gt;<br>"
        "<b>Subject:</b> Overgrown hedge on Elm Road</font><div>&nbsp;</div></div>"
        f"<div>{escape(text)}</div>",
        "Outlook.com (Live), HTML only", html=True, note="Another one from Elm Road.",
        date="2026-11-23T10:02:00")
    add("g_mailru_html_ru", "Fwd: Overgrown hedge on Elm Road",
        "<HTML><BODY><div>Посмотрите, пожалуйста.</div><div><br></div>"
        "<div>-------- Пересылаемое сообщение --------<br>"
        f"От кого: {sender[0]} &lt;{sender[1]}&gt;<br>Кому: cllr.bobjones@mail.ru<br>"
        "Дата: Понедельник, 23 ноября 2026, 10:02 +03:00<br>"
        "Тема: Overgrown hedge on Elm Road<br><br>"
        f"<blockquote>{escape(text)}</blockquote></div></BODY></HTML>",
        "Mail.ru, HTML only", html=True, language="ru", note="Посмотрите, пожалуйста.",
        date="2026-11-23T10:02:00+03:00")
    add("g_yandex_ru", "Fwd: Overgrown hedge on Elm Road",
        "-------- Пересылаемое сообщение --------\n"
        f"23.11.2026, 10:02, \"{sender[0]}\" <{sender[1]}>:\n\n" + text + "\n\n"
        "-------- Конец пересылаемого сообщения --------\n",
        "Yandex: date, name and address on one line after the separator", language="ru",
        date="2026-11-23T10:02:00")
    add("g_display_name_address_en", "FW: Overgrown hedge on Elm Road",
        "From: \"priti.shah@example.org\" <someone.else@example.net>\n"
        "Sent: 23 November 2026 10:02\nTo: Bob Jones <cllr.bobjones@gmail.com>\n"
        "Subject: Overgrown hedge on Elm Road\n\n" + text + "\n",
        "A display name that shows another address: the real (bracketed) one wins",
        sender_name=None, sender_address="someone.else@example.net", date="2026-11-23T10:02:00")
    add("g_bold_wrapped_to_en", "FW: Overgrown hedge on Elm Road",
        "*From:* Priti Shah <priti.shah@example.org>\n*Sent:* 23 November 2026 10:02\n"
        "*To:* Bob Jones <cllr.bobjones@gmail.com>; Ward Office <ward.office@anytown.gov.uk>;\n"
        "  Roads <roads@anytown.gov.uk>\n*Subject:* Overgrown hedge on Elm Road\n\n" + text + "\n",
        "Outlook plain text with bold labels and a wrapped To line", date="2026-11-23T10:02:00",
        to=["cllr.bobjones@gmail.com", "ward.office@anytown.gov.uk", "roads@anytown.gov.uk"])

    # Nested forwards: the first (outermost) level is the constituent; deeper levels stay
    # in the original's body.
    landlord = ("---------- Forwarded message ---------\n"
                "From: Acme Lettings <lettings@acme-lettings.example>\n"
                "Date: Sun, 22 Nov 2026 at 09:00\nSubject: Your repair request\n"
                "To: <priti.shah@example.org>\n\nWe will not repair the fence.\n")
    add("g_nested_gmail_en", "Fwd: Fwd: Your repair request",
        "Resident's landlord refuses.\n\n---------- Forwarded message ---------\n"
        f"From: {sender[0]} <{sender[1]}>\nDate: Mon, 23 Nov 2026 at 10:02\n"
        "Subject: Fwd: Your repair request\nTo: Bob Jones <cllr.bobjones@gmail.com>\n\n\n"
        "The hedge at number 4 is the least of it - see what my landlord says.\n\n" + landlord,
        "Nested: the first level (the resident) wins over the landlord deeper down",
        note="Resident's landlord refuses.", subject="Fwd: Your repair request",
        date="2026-11-23T10:02:00")
    add("g_nested_outlook_en", "FW: FW: Your repair request",
        "From: Priti Shah <priti.shah@example.org>\nSent: 23 November 2026 10:02\n"
        "To: Bob Jones <cllr.bobjones@gmail.com>\nSubject: FW: Your repair request\n\n"
        "The hedge at number 4 is the least of it.\n\n"
        "From: Acme Lettings <lettings@acme-lettings.example>\nSent: 22 November 2026 09:00\n"
        "To: Priti Shah <priti.shah@example.org>\nSubject: Your repair request\n\n"
        "We will not repair the fence.\n",
        "Nested Outlook blocks: the first level wins", subject="FW: Your repair request",
        date="2026-11-23T10:02:00")
    add("g_nested_three_en", "Fwd: FW: Fwd: noise",
        "Third time this month.\n\n---------- Forwarded message ---------\n"
        f"From: {sender[0]} <{sender[1]}>\nDate: Mon, 23 Nov 2026 at 10:02\n"
        "Subject: FW: Fwd: noise\nTo: <cllr.bobjones@gmail.com>\n\n\n"
        "The hedge at number 4 is fine now, but the noise is not.\n\n"
        "From: Tom Reed <tom.reed@example.net>\nSent: 22 November 2026 21:00\n"
        "To: Priti Shah <priti.shah@example.org>\nSubject: Fwd: noise\n\nFYI\n\n"
        "Begin forwarded message:\n\nFrom: Night Club <info@club.example>\n"
        "Subject: noise\nDate: 21 November 2026 at 20:00:00 GMT\nTo: tom.reed@example.net\n\n"
        "Sorry.\n",
        "Three levels: the first wins; the others stay in its body",
        note="Third time this month.", subject="FW: Fwd: noise", date="2026-11-23T10:02:00")
    add("g_nested_officer_first_en", "FW: FW: Overgrown hedge on Elm Road",
        "Officers sent this on.\n\nFrom: Parks Team <parks@anytown.gov.uk>\n"
        "Sent: 24 November 2026 09:00\nTo: Bob Jones <cllr.bobjones@gmail.com>\n"
        "Subject: FW: Overgrown hedge on Elm Road\n\nBob, this is for you.\n\n"
        f"From: {sender[0]} <{sender[1]}>\nSent: 23 November 2026 10:02\n"
        "To: Parks Team <parks@anytown.gov.uk>\nSubject: Overgrown hedge on Elm Road\n\n"
        + text + "\n",
        "Nested with an officer on the first level: the first non-internal level wins",
        note="Officers sent this on.", date="2026-11-23T10:02:00")
    return cases


def attachments() -> list[Case]:
    out = []
    for kind, name in (("message/rfc822", "g_attached_rfc822_outlook_en"),
                       ("message/global", "g_attached_global_en"),
                       ("message/rfc822", "g_attached_groupwise_en")):
        inner = EmailMessage()
        inner["From"] = "Dafydd Price <dafydd.price@example.cymru>"
        inner["To"] = "Bob Jones <cllr.bobjones@gmail.com>"
        inner["Subject"] = "Bws ysgol / School bus"
        inner["Date"] = "Mon, 23 Nov 2026 10:02:00 +0000"
        inner["Message-ID"] = "<inner-1@example.cymru>"
        inner.set_content("The school bus did not come again this morning.\n")
        note = "See attached." if "groupwise" not in name else ""
        out.append(Case(
            name, "en", "Fwd: Bws ysgol / School bus", note + "\n", {
                "description": f"Forward as an attachment ({kind})", "language": "en",
                "is_forward": True, "attached": True, "sender_name": "Dafydd Price",
                "sender_address": "dafydd.price@example.cymru",
                "subject": "Bws ysgol / School bus", "date": "2026-11-23T10:02:00+00:00",
                "body_starts": "The school bus did not come", "note": note,
                "internal_domains": INTERNAL},
            attach=inner, attach_type=kind))
    return out


def not_forwards() -> list[Case]:
    def no(name: str, subject: str, body: str, desc: str, lang: str = "en") -> Case:
        return Case(name, lang, subject, body, {"description": desc, "language": lang,
                                                "is_forward": False})
    return [
        no("g_not_fwd_subject_new_mail_en", "Fwd: bins on Elm Road",
           "Hi Bob,\n\nI am writing to ask about the bins on Elm Road. They were missed again.\n"
           "\nFrom: Mrs Priti Shah, 4 Elm Road\nTo whom it may concern\n\nRegards\nPriti\n",
           "A Fwd: subject on a new mail that forwards nothing"),
        no("g_not_fwd_subject_typed_case_en", "FW: new case",
           "Name: Priti Shah\nAddress: 4 Elm Road\nPhone: 01234 567890\n\nHedge overgrown.\n",
           "A member's typed case with an FW: subject"),
        no("g_not_reply_outlook_en", "RE: Overgrown hedge on Elm Road",
           "Thanks, the team will look at it this week.\n\nFrom: Priti Shah "
           "<priti.shah@example.org>\nSent: 23 November 2026 10:02\nTo: Parks "
           "<parks@anytown.gov.uk>\nSubject: Overgrown hedge on Elm Road\n\nThe hedge...\n",
           "An Outlook reply quoting the mail it answers"),
        no("g_not_reply_gmail_de", "AW: Schlagloch",
           "Danke, erledigt.\n\nAm Mo., 23. Nov. 2026 um 10:02 Uhr schrieb Jürgen Müller <"
           "juergen.mueller@example.de>:\n> Guten Tag, in der Hauptstraße ist ein Schlagloch.\n",
           "A German Gmail reply", "de"),
        no("g_not_reply_outlook2019_en", "Re: Overgrown hedge on Elm Road",
           "Will do.\n\nOn 23/11/2026 10:02, \"Priti Shah\" <priti.shah@example.org> wrote:\n\n"
           "    The hedge at number 4 blocks the pavement.\n",
           "An Outlook 2019 reply: attribution and indented quote, but a reply"),
        no("g_not_reply_fr_outlook", "RE: Éclairage",
           "Merci.\n\nDe : Élodie Durand <elodie.durand@example.fr>\nEnvoyé : lundi 23 novembre "
           "2026 10:02\nÀ : Mairie <mairie@example.fr>\nObjet : Éclairage\n\nBonjour...\n",
           "A French Outlook reply", "fr"),
        no("g_not_notice_from_to_en", "Road closure notice",
           "Road closure on Elm Road.\n\nFrom: 9am Monday\nTo: 5pm Friday\n"
           "Subject to weather conditions.\n", "A notice with From:/To: times"),
        no("g_not_fwd_subject_only_gmail_en", "Fwd: Planning application 26/0123",
           "Hello Cllr Jones,\n\nPlease see my objection to the planning application below.\n"
           "The extension will overlook our garden.\n\nMaria\n",
           "A Fwd: subject on the constituent's own text"),
        no("g_not_groupwise_reply_en", "Re: hedge",
           "Done.\n\n>>> Priti Shah <priti.shah@example.org> 23/11/2026 10:02 >>>\n"
           "The hedge at number 4 blocks the pavement.\n", "A GroupWise reply"),
        no("g_not_reply_es_gmail", "RE: Ruido de la obra",
           "Gracias.\n\nEl lun, 23 nov 2026 a las 10:02, José Martínez (<jose.martinez@example"
           ".es>) escribió:\n> Hola, la obra hace ruido.\n", "A Spanish Gmail reply", "es"),
        no("g_not_newsletter_en", "Forwarded message service update",
           "---------- Our newsletter ---------\nThis month: parks, roads and bins.\n",
           "A newsletter with a dashed line"),
        no("g_not_reply_ru", "Re: Яма на дороге",
           "Спасибо.\n\n23.11.2026, 10:02, \"Наталья Иванова\" <natalia.ivanova@example.ru>:\n"
           "> Здравствуйте, на нашей улице большая яма.\n", "A Russian reply", "ru"),
    ]


def render(case: Case) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{case.sender[0]} <{case.sender[1]}>"
    msg["To"] = "casework@anytown.gov.uk"
    msg["Subject"] = case.subject
    msg["Date"] = "Tue, 24 Nov 2026 09:00:00 +0000"
    msg["Message-ID"] = f"<{case.name}@corpus.example>"
    if case.html:
        msg.set_content(case.body, subtype="html", cte="quoted-printable")
    else:
        msg.set_content(case.body, cte="quoted-printable")
    if case.attach is not None:
        raw = case.attach.as_bytes(policy=SMTP)
        if case.attach_type == "message/rfc822":
            name = "Mime.822" if "groupwise" in case.name else "original.eml"
            msg.add_attachment(case.attach, filename=name)
        else:
            msg.add_attachment(raw, maintype="message", subtype="global",
                               filename="original.u8msg", cte="8bit")
        msg.set_boundary(f"=_{case.name}")  # the same bytes on every run
    return msg.as_bytes(policy=SMTP)


def cases() -> list[Case]:
    out: list[Case] = []
    for lang in L:
        out += [outlook(lang), gmail(lang, html=L.index(lang) % 3 == 1), apple(lang, ios=L.index(
            lang) % 2 == 1), thunderbird(lang), yahoo(lang), outlook2019(lang)]
        if L.index(lang) % 2 == 0:
            out.append(outlook_original(lang))
        if L.index(lang) % 4 == 0:
            out.append(owa(lang))
    return out + special() + attachments() + not_forwards()


def main() -> int:
    for old in OUT.glob("g_*"):
        old.unlink()
    for case in cases():
        (OUT / f"{case.name}.eml").write_bytes(render(case))
        (OUT / f"{case.name}.json").write_text(
            json.dumps(case.expected, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
