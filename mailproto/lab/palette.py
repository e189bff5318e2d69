"""Colours of the lab: the Okabe-Ito palette, safe for the common colour-vision deficiencies.

Colour is never the only cue: every view pairs it with a prefix (``C:``/``S:``), a border width,
a marker or a word, so a printout in grey or a reader who cannot tell blue from orange loses
nothing.  (Okabe & Ito, "Color Universal Design", 2002.)
"""

from __future__ import annotations

BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"

#: Text colours of the two directions, as the seed article printed its telnet session.
CLIENT = BLUE
SERVER = "#4D4D4D"  # dark grey: 8.4:1 on white, unlike a light grey
EVENT = BLUISH_GREEN
MUTED = "#6B6B6B"
#: Backgrounds.
HIGHLIGHT_BG = "#FFF4CC"  # a pale yellow, with a ▶ marker beside it
NOTE_BG = "#F6F6F6"
#: Diagram states.
NODE_FILL = "#FFFFFF"
NODE_EDGE = "#4D4D4D"
VISITED_FILL = "#CDE7F6"  # a pale sky blue
CURRENT_FILL = ORANGE
LAST_EDGE = BLUE
REJECTED = VERMILLION
FAINT_EDGE = "#9A9A9A"
