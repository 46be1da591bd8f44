"""The words of the eye in file names, folder names and a list's eye cells, one list for every reader
(:mod:`drgrader.data.eyes` builds its name rules from them)."""

from __future__ import annotations

# The eye's words, one list for every rule of drgrader.data.eyes that reads it: English, Latin (oculus dexter, sinister), other
# languages' (German, French, Spanish, Portuguese, Italian) and their abbreviations: OD is the right eye in French,
# Spanish and Portuguese too, the left one OG (oeil gauche), OI (ojo izquierdo), OE (olho esquerdo); RT, LT in
# English notes (probe 58 BV2). Not LA/RA (also a place, initials, a diagnosis) nor LE/RE (also a word, "re:";
# read there only as a name's last word or the name alone).
# And other languages' and scripts' words, each unambiguous as a whole word of a name (probe 59 BW1): German's
# inflected (rechtes / linkes Auge), Chinese and Japanese (右, 左, with 眼 or 目, eye), Korean, Russian, Ukrainian,
# Greek (with and without its accent), Norwegian, Danish, Swedish (and their letters written plainly), Icelandic,
# Polish, Czech, Finnish, Arabic, Hebrew, Hindi. Left out, as also common words, names or abbreviations
# of something else: Turkish sol / sağ (sol: the sun, a name), Spanish, Portuguese, Italian izq / der, esq / dir,
# sx / dx (der: German "the", dir: a folder, dx: a diagnosis), German LA / RA, Russian лев / прав (a lion, Lev;
# "correct"), Korean 좌 / 우 (a surname), Vietnamese trái / phải (a fruit; "must"), Arabic أيمن / أيسر (given names),
# Swedish höger written plainly (Dutch "hoger", higher), Indonesian kiri / kanan (given names and surnames: Anna_Kiri
# and Anna_Kanan would be one patient's eyes).
RIGHT_WORDS = ("right", "od", "rt", "rechts", "droit", "droite", "derecho", "derecha", "direito", "direita", "destro", "destra",
                "rechtes", "右", "右眼", "右目", "오른쪽", "우안", "правый", "правое", "правая", "правий", "праве", "δεξί",
                "δεξιό", "δεξιός", "δεξιά", "δεξι", "δεξιο", "δεξιος", "δεξια", "høyre", "højre", "hoyre", "hojre", "höger",
                "hægri", "prawy", "prawe", "pravý", "pravé", "oikea", "يمين", "اليمنى", "ימין", "ימנית", "दायां")
LEFT_WORDS = ("left", "os", "og", "oi", "oe", "lt", "links", "gauche", "izquierdo", "izquierda", "esquerdo", "esquerda",
               "sinistro", "sinistra", "linkes", "左", "左眼", "左目", "왼쪽", "좌안", "левый", "левое", "левая", "лівий",
               "ліве", "αριστερό", "αριστερός", "αριστερά", "αριστερο", "αριστερος", "αριστερα", "venstre", "vänster",
               "vanster", "vinstri", "lewy", "lewe", "levý", "levé", "vasen", "يسار", "اليسرى", "שמאל", "שמאלית",
               "बायां")
# The words a list's or label file's eye cell may hold (R, L too), and what they mean: the words a file name is read
# by, so a French list's OG is the eye its photo 10193_OG names.
EYE_WORDS = {"l": "left", "r": "right", **dict.fromkeys(LEFT_WORDS, "left"), **dict.fromkeys(RIGHT_WORDS, "right")}
