"""dedupe: the dedupe job's full pass on planted duplicates and look-alikes, beside its full-text candidate query alone.

The store holds 100,000 long-term memories at ``--scale 1`` (``--scale``
multiplies them, the look-alike pairs and the senders; the report says the size
used), 500 a sender over 200 senders, created over the last year, ids in time
order (``--order`` does not apply). Their texts come from some fifty sentence
shapes (preferences, facts, events, tasks) filled from lists of names, places,
companies, foods, numbers, times and dates, so that two memories rarely share
most of their words. Planted among them:

- near-duplicates, 10 % of the rows: each repeats, later and from the same
  sender, a memory of its own, reworded one way a person restates something —
  a case change, a punctuation change (a full stop added or dropped, "!", a
  typographic apostrophe), a filler prefix ("Note:", "Remember that", "FYI",
  "Just so you know," …), a function word added or dropped ("the", "a", "on",
  "really"), or one noun made plural or singular. Each is a duplicate the job
  should merge;
- 2,000 look-alike pairs, the second written later by the same sender: the same
  sentence with one difference that changes its meaning — a negation ("likes" /
  "does not like"), another person's name, another number, another time
  ("2pm" / "3pm"), another weekday or date. Neither may be merged into the other.

The rewordings and variants are written here from what a person writes, not
from memtui's rules (engine/similar.py is not imported). The rows go in by
``executemany`` (SQLite) or ``COPY`` (PostgreSQL), with ``content_key`` set at
build time (``memtui.models.text.content_key``, what ``remember`` would have
written), and the full-text index is brought up to date at build time (SQLite:
``Store.sync_search``, timed apart; PostgreSQL keeps its GIN index on every
insert): the timed runs measure dedupe itself.

Per repetition, each on a fresh copy of the built store, in alternating order:
the dedupe job's first run (a full pass: ``Engine.run_job("dedupe")``, offline,
no model), and the full-text candidate query alone — ``Store.sync_search`` and,
for every live memory, the job's own ``neighbours`` query — timed the same way
in the same kind of process. Then, on the job's copy: recall on the planted
duplicates (a pair counts when both ended in the same surviving memory), false
merges on the look-alike pairs (any pair that did), and every other memory the
job retired.

Targets: recall >= 95 %, no false merge, job / candidate query <= 3x.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
from pathlib import Path

from bench import common
from bench.common import DAY, NOW, NOW_TS, Section, log, median, timer

ROWS = 100_000  # long-term memories at --scale 1, duplicates and look-alikes included
DUPLICATE_SHARE = 0.10  # of the rows: planted near-duplicates of another memory
LOOK_ALIKES = 2_000  # planted look-alike pairs at --scale 1
PER_SENDER = 500  # memories a sender (200 senders at --scale 1)
SPAN_S = 365 * DAY
PARTNER_LAG_S = 120 * DAY  # a duplicate or look-alike is written up to this long after its original
SOFT_DELETED = 0.03  # of the memories not planted in a pair: soft-deleted, left out by the job
TARGET_RECALL = 0.95
TARGET_RATIO = 3.0
EXAMPLES = 3
COLUMNS = ("id", "content", "kind", "sender", "importance", "confidence", "created_at", "promoted_at",
           "last_reinforced_at", "recall_count", "pinned", "deleted_at", "content_key")
BUILD_BATCH = 50_000

DUPLICATE_KINDS = ("case", "punctuation", "filler prefix", "function word", "plural/singular")
LOOK_ALIKE_KINDS = ("negation", "name", "number", "time", "weekday/date")

# -- the words ----------------------------------------------------------------------------------------

NAMES = """Alice Bob Carol David Emma Frank Grace Henry Irene Jack Karen Liam Mia Noah Olivia Peter Quinn Rachel
Sam Tina Umar Vera Walter Xenia Yusuf Zoe Aaron Bianca Carlos Daria Elena Felix Gina Hugo Ines Jonas Klara Lukas
Marta Nils Oscar Paula Rafael Sofia Tobias Ursula Viktor Wanda Yara Anton Beatriz Cyril Dmitri Esther Fabian
Greta Hannah Igor Julia Kofi Leila Mateo Nadia Otto Priya Rosa Stefan Theo Uma Valentin Wei Ximena Yuki Zara
Amir Brigitte Chen Dolores Emil Farah Gustav Helga Ivan Jasmine Kai Lorenzo Malik Nora Omar Pilar Ravi Selma
Tariq Ulla Vincent Willa Yannick Agnes Bruno Camille Dario Eva Finn Giulia Hamza Ida Jorge Kira Lars Mei Nico
Orla Pablo Rania Soren Tessa Ugo Vivian Wolf Yasmin Arjun Bettina Cosmo Delia Elif Florian Gemma Hiro Isla Joel
Leon Mila Nathan Ophelia Pia Ruben Saskia Timo Veda Xavier Yvonne Alma Boris Cleo Derek Edith Filip Hazel Ilse
Jana Kenji Linnea Magnus Nell Oren Petra Remy Sven Thea Vito Wren Zainab Aditi Bernard Colm Dana Enzo Freya Gil
Hector Imani Jude Kalani Lotte Marco Nina Odile Piotr Ronan Sana Tomas Uri Vesna Ada Benedikt Cora Dev Eliza""".split()
SURNAMES = """Okafor Lindqvist Moreau Tanaka Kowalski Haddad Novak Fischer Rossi Silva Jensen Petrov Nakamura
Schmidt Dubois Garcia Murphy Olsen Costa Weber Nowak Bauer Romano Santos Kim Larsen Ivanova Yamamoto Becker
Lefebvre Martins Byrne Hansen Ferreira Wagner Mazur Conti Park Eriksson Sokolova Hoffmann Girard Lopez Walsh
Nielsen Almeida Keller Wojcik Greco Choi Berg Orlova Kato Richter Fontaine Ramos Kelly Dahl Pereira Vogel
Lewandowski Marino Lee Holm Morozova Suzuki Krause Mercier Diaz Ryan Andersen Sousa Frank Kaminski Bruno Jung
Strand Volkova Ito Braun Chevalier Torres Doyle Poulsen Rocha Schulz Zielinski Gallo Shin Lund Pavlova Sato""".split()
CITIES = """Berlin Lisbon Oslo Kyoto Nairobi Toronto Porto Vienna Krakow Seville Bergen Osaka Lagos Montreal
Hamburg Valencia Tallinn Busan Accra Denver Munich Bilbao Riga Sapporo Dakar Seattle Cologne Malaga Vilnius Daegu
Kigali Austin Leipzig Granada Helsinki Nagoya Kampala Portland Dresden Cordoba Stockholm Fukuoka Lusaka Chicago
Zurich Zaragoza Gothenburg Sendai Harare Boston Geneva Murcia Aarhus Kobe Windhoek Atlanta Basel Palma Tampere
Hiroshima Maputo Phoenix Bern Alicante Uppsala Nara Gaborone Dallas Lyon Turin Ghent Lucknow Quito Marseille
Bologna Antwerp Pune Lima Nantes Naples Bruges Jaipur Bogota Toulouse Florence Utrecht Kochi Medellin Bordeaux
Verona Rotterdam Mysore Cusco Lille Genoa Eindhoven Goa Cali Nice Palermo Groningen Indore Arequipa Strasbourg
Padua Leiden Surat Cartagena Rennes Trieste Delft Nagpur Montevideo Dijon Parma Haarlem Bhopal Asuncion Grenoble
Bari Maastricht Kanpur Santiago Reims Siena Tilburg Agra Valparaiso Tours Pisa Arnhem Patna Rosario Brest""".split()
COMPANIES = """Northwind Contoso Fabrikam Tailspin Wingtip Litware Proseware Adatum Lucerne Trey Globex Initech
Hooli Vandelay Soylent Cyberdyne Wonka Stark Wayne Tyrell Aperture Umbrella Massive Dynamic Oscorp Pied Piper
Monarch Gringotts Vehement Sirius Kwik Acme Zenith Quantix Brightline Bluefin Corvid Halcyon Ironbark Juniper
Keystone Lumen Meridian Nimbus Obsidian Pinnacle Quasar Redwood Sable Tundra Umbra Vanguard Willow Xylo Yonder
Zephyr Arbor Beacon Cobalt Driftwood Ember Fjord Granite Harbor Indigo Jetstream Kestrel Larkspur""".split()
PROJECTS = """Atlas Orion Phoenix Hermes Apollo Nebula Falcon Mercury Titan Helios Aurora Vesta Juno Kepler
Polaris Cassini Sirocco Mistral Monsoon Zephyrus Tempest Cyclone Glacier Avalanche Ember Cinder Quartz Basalt
Obsidian Onyx Jasper Garnet Topaz Beryl Opal Cobalt Argon Neon Krypton Xenon Radon Lithium Boron Carbon Helium
Sparrow Kestrel Osprey Heron Pelican Puffin Condor Albatross Magpie Starling Wren Finch""".split()
RESTAURANT_ADJ = "Golden Blue Little Red Silver Green Old Lucky Hidden Wild Copper Black Rusty Crooked Sleepy".split()
RESTAURANT_NOUN = "Lantern Heron Spoon Olive Fox Anchor Oak Dragon Lotus Harbor Garden Kettle Fig Pepper Whale".split()
STREETS = """Elm Maple Harbor Mill Church Station Park Bridge Cedar Willow Queen King Market Orchard Chapel Spring
Birch Hill Lake River Forest Meadow Victoria Albert Garden Castle Abbey Canal Dock Mulberry""".split()
LANDMARKS = ["Central Park", "the main station", "the old harbour", "the university", "the cathedral",
             "the football stadium", "the riverside market", "the botanical garden", "the city library",
             "the science museum", "the opera house", "the tram depot", "Union Square", "the ferry terminal",
             "the town hall", "the ice rink", "the flower market", "the art school", "the fish market",
             "Victoria Park", "the old brewery", "the lighthouse", "the convention center", "the zoo"]
ACTIVITY_PLACES = ["the climbing gym", "choir practice", "the farmers market", "the sauna", "the library",
                   "the swimming pool", "church", "the dog park", "book club", "the cinema", "evening classes",
                   "the allotment", "the pub quiz", "the yoga studio", "the chess club", "the pottery studio",
                   "football practice", "the rowing club", "the community garden", "the language exchange"]
SHELTERS = ["animal shelter", "food bank", "soup kitchen", "homeless shelter", "charity shop", "hospice",
            "youth center", "refugee center", "community kitchen", "reading program"]
GYMS = ["Iron Temple", "FitHub", "Peak Performance", "Urban Gym", "CoreWorks", "Lift Lab", "Pulse Fitness",
        "Harbor Athletic Club", "Summit Climbing", "Blue Lagoon Spa", "Titan Strength", "Zen Den"]
PET_NAMES = """Biscuit Pepper Mochi Luna Ziggy Waffles Nacho Pickles Mango Clover Ginger Pumpkin Shadow Pixel
Noodle Bean Dumpling Tofu Sprout Maple""".split()
AIRLINES = "LH BA AF KL UA DL IB SK AY OS LX TP EI AZ".split()
LETTERS = "ABCDEFGH"
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()

# Countable nouns, singular (``plural`` spells the plural).
FOODS = """bagel croissant dumpling taco burrito pretzel muffin pancake waffle samosa empanada doughnut scone
brownie cookie pastry sandwich bun tart pie cupcake baguette flatbread wrap kebab noodle""".split()
SHOPS = ["bakery", "deli", "food truck", "market stall", "cafe", "bistro", "diner", "noodle bar", "taqueria",
         "canteen", "patisserie", "kiosk", "corner shop", "street stand"]
PETS = ["cat", "dog", "rabbit", "parrot", "hamster", "tortoise", "ferret", "gecko", "guinea pig", "canary",
        "chinchilla", "budgie", "iguana", "hedgehog", "cockatiel"]
DOCS = ["contract", "invoice", "proposal", "slide deck", "budget", "report", "roadmap", "design doc", "audit",
        "spreadsheet", "brief", "estimate", "pitch", "memo", "checklist", "timeline", "forecast", "tax return",
        "grant application", "insurance claim", "lease", "quote", "press release", "job description"]
TEAMS = ["platform", "payments", "growth", "mobile", "data", "security", "support", "infrastructure", "billing",
         "search", "design", "marketing", "sales", "legal", "finance", "research", "onboarding", "analytics"]
EVENTS = ["conference", "workshop", "offsite", "hackathon", "wedding", "concert", "meetup", "retreat",
          "fundraiser", "webinar", "summit", "reunion", "exhibition", "festival", "graduation", "trade fair",
          "book launch", "board meeting", "charity gala", "housewarming"]
VEHICLES = ["hatchback", "van", "pickup", "station wagon", "minivan", "scooter", "motorbike", "sedan",
            "convertible", "camper van", "cargo bike", "estate car"]
BRANDS = "Toyota Volvo Honda Subaru Tesla Skoda Mazda Ford Kia Peugeot Fiat Renault Hyundai Nissan Citroen".split()
PARTS = ["tire", "brake pad", "wiper", "spark plug", "headlight", "air filter", "seat cover",
         "floor mat", "winter tire", "roof bar"]
FURNITURE = ["armchair", "bookshelf", "curtain", "rug", "lamp", "desk", "sofa", "stool", "cabinet", "mirror",
             "bench", "wardrobe", "dresser", "ottoman", "bed frame", "coffee table", "shelf", "footstool"]
ROOMS = ["kitchen", "hallway", "living room", "bedroom", "study", "garage", "attic", "basement", "guest room",
         "home office", "balcony", "porch", "laundry room", "pantry", "nursery", "workshop"]
JOBS = ["nurse", "data engineer", "architect", "pharmacist", "product manager", "teacher", "paralegal",
        "sous chef", "translator", "electrician", "radiologist", "accountant", "UX researcher", "civil engineer",
        "veterinarian", "pilot", "journalist", "firefighter", "biologist", "dentist", "physiotherapist",
        "librarian", "carpenter", "midwife", "statistician"]
APPLIANCES = ["dishwasher", "washing machine", "fridge", "boiler", "oven", "dryer", "freezer", "heat pump",
              "water heater", "extractor fan", "garage door", "doorbell"]
THINGS = ["key", "charger", "umbrella", "flashlight", "battery", "fuse", "light bulb", "padlock", "cable",
          "adapter", "remote", "toothbrush", "phone case", "bike light", "memory card"]
CONTAINERS = ["drawer", "shoebox", "toolbox", "cupboard", "biscuit tin", "basket", "jar", "filing cabinet",
              "suitcase", "backpack", "glovebox", "sewing box"]
PLANTS = ["fern", "monstera", "basil", "orchid", "fiddle leaf fig", "pothos", "bonsai", "aloe", "peace lily",
          "rubber plant", "snake plant", "jade plant", "begonia", "succulent", "lemon tree", "rosemary"]
HOMES = ["flat", "apartment", "cabin", "house", "studio", "cottage", "loft", "bungalow", "townhouse",
         "holiday home"]
CONSUMABLES = ["boxes of tea", "cartons of oat milk", "packs of napkins", "bottles of dish soap", "jars of honey",
               "bags of rice", "crates of sparkling water", "rolls of paper towels", "bags of coffee beans",
               "boxes of cereal", "packs of sponges", "tins of biscuits"]
# Mass nouns, fields, languages and the like.
DRINKS = ["coffee", "green tea", "espresso", "kombucha", "oat milk", "sparkling water", "red wine", "craft beer",
          "matcha", "hot chocolate", "orange juice", "chai", "mint tea", "cold brew", "ginger beer", "cider"]
ALLERGENS = ["peanuts", "shellfish", "penicillin", "latex", "pollen", "gluten", "lactose", "sesame",
             "bee stings", "dust mites", "soy", "tree nuts", "ibuprofen", "sulfites", "mustard", "celery", "kiwi",
             "strawberries", "aspirin", "horse hair"]
FOOD_KINDS = ["red meat", "pork", "dairy", "fish", "spicy food", "raw onions", "mushrooms", "eggs", "sugar",
              "seafood", "fried food", "olives", "cilantro", "tomatoes", "blue cheese", "liver", "anchovies"]
MEDICATION = ["vitamin D", "iron supplements", "metformin", "antihistamines", "fish oil", "magnesium",
              "thyroid medication", "probiotics", "blood pressure pills", "folic acid", "zinc", "melatonin"]
TOPICS = ["medieval history", "quantum computing", "urban planning", "climate policy", "marine biology",
          "stoic philosophy", "behavioral economics", "jazz history", "space exploration", "typography",
          "mycology", "game theory", "sleep science", "architecture", "cryptography", "linguistics", "astronomy",
          "nutrition", "negotiation", "forestry", "volcanoes", "ancient Rome", "bird migration", "chess openings"]
INSTRUMENTS = ["bass guitar", "cello", "drums", "saxophone", "violin", "trumpet", "keyboard", "banjo", "ukulele",
               "clarinet", "harmonica", "flute", "mandolin", "accordion", "double bass", "trombone"]
LANGUAGES = ["Spanish", "German", "Mandarin", "Portuguese", "Japanese", "French", "Italian", "Dutch", "Polish",
             "Korean", "Arabic", "Hindi", "Swedish", "Turkish", "Greek", "Hebrew", "Russian", "Vietnamese",
             "Czech", "Finnish", "Swahili", "Tagalog"]
PROGRAMMING = ["Python", "Rust", "Go", "TypeScript", "Kotlin", "Scala", "Elixir", "Haskell", "Java", "Ruby",
               "Swift", "Zig", "OCaml", "Clojure", "Julia", "Lua", "Perl", "Dart", "Erlang", "PHP"]
EDITORS = ["Vim", "Emacs", "VS Code", "IntelliJ", "Neovim", "Sublime Text", "Zed", "Helix", "Xcode", "PyCharm"]
COLORS = ["teal", "navy", "mustard", "olive", "burgundy", "charcoal", "ivory", "coral", "sage", "terracotta",
          "lavender", "cream", "forest green", "slate grey", "ochre", "plum"]
SPORTS = ["football", "basketball", "tennis", "cricket", "hockey", "baseball", "rugby", "volleyball", "snooker",
          "darts", "golf", "handball", "cycling", "badminton", "water polo"]
HOBBIES = ["climbing", "pottery", "chess", "sailing", "birdwatching", "woodworking", "salsa", "knitting",
           "photography", "gardening", "fencing", "archery", "surfing", "calligraphy", "baking", "rowing", "yoga",
           "bouldering", "origami", "watercolor", "improv", "tango"]
LICENSES = ["motorcycle", "boat", "truck", "forklift", "scuba", "real estate", "ham radio", "teaching",
            "nursing", "fishing", "hunting", "drone"]

IRREGULAR = {"shelf": "shelves", "bookshelf": "bookshelves", "knife": "knives", "child": "children",
             "person": "people", "leaf": "leaves"}


def plural(noun: str) -> str:
    """English spelling of the plural of ``noun`` (of its last word)."""
    head, _, last = noun.rpartition(" ")
    if last in IRREGULAR:
        word = IRREGULAR[last]
    elif last in WEEKDAYS:
        word = last + "s"
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


# Singular <-> plural of the countable slot values, for a rewording that changes one noun's number.
NUMBER = {noun: plural(noun) for nouns in (FOODS, DOCS, PARTS, FURNITURE, THINGS, PLANTS, HOMES, WEEKDAYS)
          for noun in nouns}
NUMBER.update({p: s for s, p in list(NUMBER.items())})

SLOTS = {
    "name": NAMES, "name2": NAMES, "surname": SURNAMES, "city": CITIES, "company": COMPANIES,
    "project": PROJECTS, "street": STREETS, "landmark": LANDMARKS, "activity": ACTIVITY_PLACES,
    "shelter": SHELTERS, "gym": GYMS, "petname": PET_NAMES, "airline": AIRLINES, "letter": list(LETTERS),
    "foods": [plural(f) for f in FOODS], "pet": PETS, "pets": [plural(p) for p in PETS], "shop": SHOPS,
    "doc": DOCS, "team": TEAMS, "event": EVENTS, "vehicle": VEHICLES, "brand": BRANDS,
    "parts": [plural(p) for p in PARTS], "furniture": FURNITURE, "room": ROOMS, "job": JOBS,
    "appliance": APPLIANCES, "thing": THINGS, "container": CONTAINERS, "plant": PLANTS, "home": HOMES,
    "consumable": CONSUMABLES, "drink": DRINKS, "allergen": ALLERGENS, "food_kind": FOOD_KINDS,
    "medication": MEDICATION, "topic": TOPICS, "instrument": INSTRUMENTS, "language": LANGUAGES,
    "programming": PROGRAMMING, "editor": EDITORS, "color": COLORS, "sport": SPORTS, "hobby": HOBBIES,
    "license": LICENSES, "month": MONTHS,
    "restaurant": [f"the {a} {n}" for a in RESTAURANT_ADJ for n in RESTAURANT_NOUN],
}

# (kind, shape): {slot} from SLOTS, {n:LO-HI} a number, {time}, {day} a weekday, {date} a month and day;
# [positive|negative] the statement and its negation (the positive is written, mostly); ~{slot} a noun and
# <as written|other number> words whose grammatical number a restatement may change.
SHAPES = (
    ("preference", "{name} [likes|does not like] the ~{foods} from the {shop} near {landmark}"),
    ("preference", "{name} [drinks|does not drink] {drink} with breakfast on {day}s"),
    ("fact", "{name}'s flight to {city} leaves at {time} on {day}"),
    ("task", "Book a table for {n:2-12} at {restaurant} on {day} at {time}"),
    ("fact", "{name} [is|is not] allergic to {allergen}"),
    ("event", "The {team} standup is at {time} every {day} in room {n:100-950}"),
    ("fact", "{name} has {n:2-6} {pets} and a {pet} called {petname}"),
    ("preference", "{name} [drinks|never drinks] {drink} after {time}"),
    ("task", "Send the ~{doc} for {project} to {name} by {date}"),
    ("fact", "{name} lives at {n:1-400} {street} Street in {city}"),
    ("task", "The {vehicle} needs new ~{parts} before the trip to {city} on {date}"),
    ("event", "{name} [can|cannot] attend the {event} in {city} on {date}"),
    ("fact", "Rent for the ~{home} in {city} is ${n:600-3900} a month"),
    ("fact", "{name}'s birthday is on {date}"),
    ("preference", "{name} [speaks|does not speak] {language} at work with the {team} team"),
    ("task", "Pick up {name} from {activity} at {time} on {day}"),
    ("preference", "{name} [wants|does not want] the {color} ~{furniture} in the {room}"),
    ("event", "The {project} release is planned for {date} with {n:3-40} open tickets"),
    ("fact", "{name} works as a {job} at {company} in {city}"),
    ("preference", "{name} [eats|does not eat] {food_kind} at dinner parties"),
    ("event", "Dentist appointment with Dr. {surname} on {day} at {time}"),
    ("fact", "{name} runs {n:3-21} kilometers along the river every {day} morning"),
    ("fact", "The {appliance} in the {room} was repaired by {company} for ${n:40-900}"),
    ("fact", "{name} [takes|does not take] {medication} with breakfast"),
    ("fact", "The membership at {gym} costs ${n:20-90} a month and includes {n:2-10} guest passes"),
    ("preference", "{name} [enjoys|does not enjoy] reading books about {topic}"),
    ("task", "Call {name} about the ~{doc} on {day} at {time}"),
    ("fact", "{name} [plays|does not play] the {instrument} in <a band|bands> from {city}"),
    ("fact", "{name} keeps the spare ~{thing} in the {container} in the {room}"),
    ("event", "The {team} team deploys {project} every {day} after {time}"),
    ("fact", "{name} [has|does not have] a {license} license"),
    ("task", "Order {n:2-24} {consumable} for the office kitchen before {date}"),
    ("event", "{name}'s daughter {name2} starts school in {city} on {date}"),
    ("preference", "{name} [trusts|does not trust] {company} with customer data"),
    ("fact", "Parking spot {n:1-300} in the garage on {street} Street belongs to {name}"),
    ("preference", "{name} [uses|does not use] {editor} for {programming} projects"),
    ("fact", "The {project} database backup runs at {time} every night on {n:2-16} servers"),
    ("preference", "{name} [watches|never watches] {sport} games on {day} evenings"),
    ("event", "The hotel in {city} is booked from {date} for {n:2-9} nights for the {event}"),
    ("preference", "{name} [wants|does not want] <reminders|a reminder> about {topic} on ~{day}"),
    ("task", "The {doc} for {company} is due on {date} and the fee is ${n:150-9000}"),
    ("event", "{name} [agreed|did not agree] to review the {project} ~{doc} with {name2}"),
    ("event", "{name} met {name2} at the {event} in {city} in {month}"),
    ("fact", "{name} [owns|does not own] a {brand} {vehicle}"),
    ("task", "Water the ~{plant} on the {room} windowsill every {n:2-10} days"),
    ("fact", "{name} [is|is not] vegetarian since {n:1995-2024}"),
    ("fact", "Flight {airline}{n:100-999} to {city} leaves from gate {letter}{n:1-40} at {time} on {day}"),
    ("preference", "{name} [goes|does not go] to {activity} on ~{day}"),
    ("task", "The quarterly {doc} for the {team} team is reviewed by {name} on {date}"),
    ("preference", "{name} [likes|does not like] the {hobby} <classes|class> at the community center in {city}"),
    ("fact", "{name} [is|is not] comfortable driving in {city} at night"),
    ("event", "{name} volunteers at the {shelter} in {city} every {day} from {time}"),
    ("fact", "The wifi password for the {home} in {city} is on a card in the {container}"),
    ("preference", "{name} [wants|does not want] the {project} <updates|update> by email every {day}"),
    ("task", "Renew the {license} license for {name} before {date}"),
    ("event", "{name} and {name2} have a call with {company} about the ~{doc} at {time}"),
)

_AN = re.compile(r"\b([Aa]) (?=[aeiou])")
_PART = re.compile(r"(~)?\{(\w+)(?::(\d+)-(\d+))?\}|\[([^|\]]+)\|([^\]]+)\]|<([^|>]+)\|([^>]+)>")


def _parse(shape: str) -> list[tuple]:
    """A shape as segments: ("text", s), ("slot", name, lo, hi, number may change), ("neg", positive,
    negative), ("number", as written, the other number)."""
    out, at = [], 0
    for m in _PART.finditer(shape):
        if m.start() > at:
            out.append(("text", shape[at:m.start()]))
        if m.group(2):
            out.append(("slot", m.group(2), int(m.group(3) or 0), int(m.group(4) or 0), bool(m.group(1))))
        elif m.group(5):
            out.append(("neg", m.group(5), m.group(6)))
        else:
            out.append(("number", m.group(7), m.group(8)))
        at = m.end()
    if at < len(shape):
        out.append(("text", shape[at:]))
    return out


PARSED = [_parse(shape) for _, shape in SHAPES]


def _supports(parts) -> set[str]:
    kinds = set()
    for part in parts:
        if part[0] == "neg":
            kinds.add("negation")
        elif part[0] == "slot":
            kinds.add({"name": "name", "n": "number", "time": "time", "day": "weekday/date",
                       "date": "weekday/date", "month": "weekday/date"}.get(part[1], ""))
    return kinds - {""}


SUPPORTS = [_supports(parts) for parts in PARSED]


def _time(rng: random.Random, style: int) -> str:
    if style == 0:
        return f"{rng.randint(1, 12)}{rng.choice(('am', 'pm'))}"
    if style == 1:
        return f"{rng.randint(1, 12)}:{rng.choice(('15', '30', '45'))}{rng.choice(('am', 'pm'))}"
    return f"{rng.randint(6, 21)}:{rng.choice(('00', '15', '30', '45'))}"


def _value(rng: random.Random, part: tuple) -> str:
    name, lo, hi = part[1:4]
    if name == "n":
        return str(rng.randint(lo, hi))
    if name == "time":
        return _time(rng, rng.randrange(3))
    if name == "day":
        return rng.choice(WEEKDAYS)
    if name == "date":
        return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"
    return rng.choice(SLOTS[name])


def _other(rng: random.Random, part: tuple, value: str) -> str:
    """A different value for the slot ``part`` holding ``value``, of the same form."""
    name = part[1]
    for _ in range(100):
        if name == "time":
            style = 2 if ":" in value and not value.endswith("m") else (1 if ":" in value else 0)
            new = _time(rng, style)
        elif name == "date":
            month, day = value.split()
            new = f"{rng.choice(MONTHS)} {day}" if rng.random() < 0.5 else f"{month} {rng.randint(1, 28)}"
        else:
            new = _value(rng, part)
        if new != value:
            return new
    raise RuntimeError(f"no other value for {part}")


class Memory:
    """One sentence: its shape, slot values and polarity; ``text()`` writes it."""

    __slots__ = ("shape", "values", "negative", "stop")

    def __init__(self, shape: int, values: list[str], negative: bool, stop: str):
        self.shape, self.values, self.negative, self.stop = shape, values, negative, stop

    @classmethod
    def draw(cls, rng: random.Random, shape: int) -> "Memory":
        parts = PARSED[shape]
        values = [_value(rng, p) for p in parts if p[0] == "slot"]
        return cls(shape, values, rng.random() < 0.2, "." if rng.random() < 0.5 else "")

    def text(self, really: bool = False, renumber: int | None = None) -> str:
        """The sentence; ``really`` before its verb, or the ``renumber``-th noun that may change number
        in the other number."""
        out, k, changeable = [], 0, 0
        for part in PARSED[self.shape]:
            if part[0] == "text":
                out.append(part[1])
            elif part[0] == "neg":
                out.append(("really " if really else "") + (part[2] if self.negative else part[1]))
            elif part[0] == "number":
                out.append(part[2] if renumber == changeable else part[1])
                changeable += 1
            else:
                value = self.values[k]
                k += 1
                if part[4]:
                    if renumber == changeable:
                        value = NUMBER[value]
                    changeable += 1
                out.append(value)
        text = _AN.sub(r"\1n ", "".join(out))  # "a architect" -> "an architect"
        return text[0].upper() + text[1:] + self.stop

    def changeable(self) -> int:
        """How many of its nouns may change number."""
        return sum(1 for p in PARSED[self.shape] if p[0] == "number" or (p[0] == "slot" and p[4]))

    def starts_with_name(self) -> bool:
        first = PARSED[self.shape][0]
        return first[0] == "slot" and first[1] in ("name", "name2")

    def variant(self, rng: random.Random, kind: str) -> "Memory":
        """The same sentence with one difference in meaning of ``kind``."""
        if kind == "negation":
            return Memory(self.shape, list(self.values), not self.negative, self.stop)
        wanted = {"name": ("name",), "number": ("n",), "time": ("time",),
                  "weekday/date": ("day", "date", "month")}[kind]
        slots = [p for p in PARSED[self.shape] if p[0] == "slot"]
        where = [k for k, p in enumerate(slots) if p[1] in wanted]
        k = rng.choice(where)
        values = list(self.values)
        values[k] = _other(rng, slots[k], values[k])
        return Memory(self.shape, values, self.negative, self.stop)


FILLERS = ("Note:", "Remember that", "FYI", "FYI:", "Just so you know,", "Reminder:", "Btw,", "Note that")
_ARTICLE = re.compile(r"\b(?:the|a|an) (?=\w)", re.I)
_ON_DAY = re.compile(r"\bon (?=(?:" + "|".join(WEEKDAYS + MONTHS) + r")\b)")


def rewordable(memory: Memory, kind: str) -> bool:
    """Whether ``memory`` can be restated the way ``kind`` says (not every sentence has an article or a
    noun whose number can change)."""
    try:
        reword(random.Random(0), memory, kind)
    except IndexError:
        return False
    return True


def reword(rng: random.Random, memory: Memory, kind: str) -> str:
    """``memory`` restated one way of ``kind``, as a person would write the same thing again."""
    text = memory.text()
    if kind == "case":
        return text.lower() if rng.random() < 0.7 else " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    if kind == "punctuation":
        if "'" in text and rng.random() < 0.3:
            return text.replace("'", "\u2019")  # a phone keyboard's apostrophe
        if text.endswith("."):
            return rng.choice((text[:-1], text[:-1] + "!", text[:-1] + "..."))
        return text + rng.choice((".", ".", "!"))
    if kind == "filler prefix":
        prefix = rng.choice(FILLERS)
        if memory.starts_with_name() or prefix.endswith(":") or prefix == "FYI":
            return f"{prefix} {text}"
        return f"{prefix} {text[0].lower()}{text[1:]}"
    if kind == "function word":
        choices = [("drop", m) for m in _ARTICLE.finditer(text)] + [("drop", m) for m in _ON_DAY.finditer(text)]
        if any(p[0] == "neg" for p in PARSED[memory.shape]):
            choices.append(("really", None))
        how, m = rng.choice(choices)
        if how == "really":
            return memory.text(really=True)
        out = text[:m.start()] + text[m.end():]
        return out[0].upper() + out[1:] if m.start() == 0 else out
    if kind == "plural/singular":
        return memory.text(renumber=rng.choice(range(memory.changeable())))
    raise ValueError(kind)


# -- the data (seeded) ------------------------------------------------------------------------------------


def sizes(scale: float) -> dict:
    rows = max(1000, int(ROWS * scale))
    return {"rows": rows, "duplicates": int(rows * DUPLICATE_SHARE), "look_alikes": max(20, int(LOOK_ALIKES * scale)),
            "senders": max(2, round(rows / PER_SENDER))}


def dataset(rows: int, duplicates: int, look_alikes: int, senders: int, seed: int) -> dict:
    """The rows (COLUMNS, ids in created_at order) and the planted pairs by id:
    ``duplicates`` [(original id, duplicate id, kind)], ``look_alikes`` [(first id, second id, kind)]."""
    from memtui.models.text import content_key

    rng = random.Random(seed)
    base = rows - duplicates - look_alikes
    if base - look_alikes < duplicates:
        raise ValueError("too many planted pairs for the rows")
    items = []  # [created_at, sender, text (a Memory until written), kind, role: look, dup or plain]

    def original(shape: int) -> tuple:
        memory = Memory.draw(rng, shape)
        created = NOW_TS - rng.uniform(DAY, SPAN_S)
        return memory, created, f"agent-{rng.randrange(senders)}"

    def later(created: float) -> float:
        return created + rng.uniform(60.0, min(PARTNER_LAG_S, NOW_TS - created - 60.0))

    pairs_look, pairs_dup = [], []
    for i in range(look_alikes):
        kind = LOOK_ALIKE_KINDS[i % len(LOOK_ALIKE_KINDS)]
        shape = rng.choice([s for s in range(len(SHAPES)) if kind in SUPPORTS[s]])
        memory, created, sender = original(shape)
        other = memory.variant(rng, kind)
        a = len(items)
        items.append([created, sender, memory.text(), SHAPES[shape][0], "look"])
        items.append([later(created), sender, other.text(), SHAPES[shape][0], "look"])
        pairs_look.append((a, a + 1, kind))
    originals = []
    for _ in range(base - look_alikes):
        shape = rng.randrange(len(SHAPES))
        memory, created, sender = original(shape)
        originals.append(len(items))
        items.append([created, sender, memory, SHAPES[shape][0], "plain"])
    pool = rng.sample(originals, len(originals))
    for j in range(duplicates):
        kind = DUPLICATE_KINDS[j % len(DUPLICATE_KINDS)]
        at = len(pool) - 1  # the first memory of the shuffled pool that can be restated this way
        while not rewordable(items[pool[at]][2], kind):
            at -= 1
        a = pool.pop(at)
        created, sender, memory, memory_kind, _ = items[a]
        items[a][4] = "dup"
        items.append([later(created), sender, reword(rng, memory, kind), memory_kind, "dup"])
        pairs_dup.append((a, len(items) - 1, kind))
    for item in items:
        if not isinstance(item[2], str):
            item[2] = item[2].text()
    order = sorted(range(len(items)), key=lambda k: items[k][0])
    ids = {k: i + 1 for i, k in enumerate(order)}
    out_rows = []
    for k in order:
        created, sender, text, kind, role = items[k]
        reinforced = rng.uniform(created, NOW_TS)
        deleted = rng.uniform(reinforced, NOW_TS) if role == "plain" and rng.random() < SOFT_DELETED else None
        out_rows.append((ids[k], text, kind, sender, round(min(10.0, rng.betavariate(2, 4) * 10), 1),
                         round(rng.betavariate(4, 2), 3), created, created, reinforced,
                         min(int(rng.paretovariate(1.5)) - 1, 1000), 1 if rng.random() < 0.02 else 0, deleted,
                         content_key(text)))
    return {"rows": out_rows,
            "duplicates": [(ids[a], ids[b], kind) for a, b, kind in pairs_dup],
            "look_alikes": [(ids[a], ids[b], kind) for a, b, kind in pairs_look]}


# -- building (in a child process) ---------------------------------------------------------------


def build_sqlite(path: str, rows: int, duplicates: int, look_alikes: int, senders: int, seed: int) -> dict:
    """Child: memtui's schema (Store.open), the rows by executemany, then Store.sync_search (timed apart)."""
    from memtui.models import Store

    final = Path(path)
    tmp = final.with_name(final.name + ".building")
    common.remove_db(tmp)
    with timer() as t:
        data = dataset(rows, duplicates, look_alikes, senders, seed)
        common.create_schema(tmp)
        conn = common.raw_connect(tmp)
        conn.execute("PRAGMA synchronous=off")  # building only
        sql = f"INSERT INTO long_term_memory ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for start in range(0, len(data["rows"]), BUILD_BATCH):
            conn.execute("BEGIN")
            conn.executemany(sql, data["rows"][start:start + BUILD_BATCH])
            conn.execute("COMMIT")
        conn.close()
        store = Store.open(tmp)
        with timer() as t_sync:
            store.sync_search()
        store.close()
        common.checkpoint(tmp)
    os.replace(tmp, final)
    return {"wall_s": t["s"], "sync_s": t_sync["s"], "mb": final.stat().st_size / 2**20}


def build_pg(server: str, database: str, rows: int, duplicates: int, look_alikes: int, senders: int,
             seed: int) -> dict:
    """Child: a new database with memtui's schema (Store.open), the rows by COPY (the triggers and the
    full-text GIN index take each), the id sequence moved past them, then VACUUM (FREEZE, ANALYZE); built
    under a temporary name and renamed when done."""
    with timer() as t:
        data = dataset(rows, duplicates, look_alikes, senders, seed)
        building, url = common.pg_building(server, database)
        with common.pg_connect(url, autocommit=False) as conn:
            conn.execute("SET synchronous_commit = off")  # building only
            with conn.cursor() as cur:
                common.pg_put(cur)("long_term_memory", COLUMNS, ((*r[:10], bool(r[10]), *r[11:]) for r in data["rows"]))
                cur.execute("SELECT setval(pg_get_serial_sequence('long_term_memory', 'id'),"
                            " (SELECT max(id) FROM long_term_memory) + 1, false)")
            conn.commit()
        size = common.pg_finish_building(server, url, building, database)
    return {"wall_s": t["s"], "sync_s": None, "mb": size / 2**20}


def build(args, workdir: Path, backend, params: dict) -> tuple[str, dict | None]:
    """The built store (SQLite path or PostgreSQL database name, a template for the copies), and its build
    figures (None when an earlier run with the same --workdir built it)."""
    key = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    if backend.name == "sqlite":
        path = workdir / f"dedupe-{key}.db"
        if path.exists():
            return path, None
        log(f"dedupe: building {params['rows']:,} long-term memories on SQLite")
        res = common.run_child("bench.dedupe:build_sqlite", workdir, path=str(path), **params)
        log(f"dedupe: built in {res['wall_s']:.1f} s (search index {res['sync_s']:.1f} s), {res['mb']:,.0f} MiB")
        return path, res
    digest = hashlib.sha1(f"{workdir}|{key}".encode()).hexdigest()[:12]
    database = f"memtui_bench_dedupe_{digest}"[:63]
    if database not in backend.templates:
        backend.templates.append(database)  # dropped at the end unless --keep
    if backend.exists(database):
        return database, None
    log(f"dedupe: building {params['rows']:,} long-term memories on PostgreSQL")
    res = common.run_child("bench.dedupe:build_pg", workdir, server=backend.server, database=database, **params)
    log(f"dedupe: built in {res['wall_s']:.1f} s, {res['mb']:,.0f} MiB")
    return database, res


# -- the contenders (each in its own process) ----------------------------------------------------------


def _retired(path: str) -> list[list[int]]:
    """(id, superseded_by) of every retired long-term memory, read with the bench's own connection."""
    sql = "SELECT id, superseded_by FROM long_term_memory WHERE superseded_by IS NOT NULL ORDER BY id"
    conn = common.pg_connect(path) if "://" in path else common.raw_connect(path)
    try:
        return [[int(a), int(b)] for a, b in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def job(path: str) -> dict:
    """Child: the dedupe job's first run (a full pass), timed around Engine.run_job; then what it retired."""
    from memtui.engine import Engine, FakeClock
    from memtui.engine.config import Config
    from memtui.models import Store

    store = Store.open(path)
    engine = Engine(store, Config(), FakeClock(NOW))
    with timer() as t:
        info = engine.run_job("dedupe")
    store.close()
    return {"wall_s": t["s"], "job_ms": info.duration_ms, "status": info.status, "result": info.result,
            "error": info.error, "retired": _retired(path)}


def candidates(path: str) -> dict:
    """Child: the full-text candidate query alone, as the job makes it: Store.sync_search, then the job's
    ``neighbours`` for every live memory in id order (``subjects``), on a context built as the engine's."""
    from memtui.engine import FakeClock
    from memtui.engine.jobs.base import JobContext
    from memtui.engine.jobs.dedupe import DedupeConfig, Mem, neighbours, subjects
    from memtui.models import Store

    store = Store.open(path)
    cfg = DedupeConfig()
    ctx = JobContext(store=store, clock=FakeClock(NOW), config=cfg, job="dedupe")
    compared = found = 0
    with timer() as t:
        store.sync_search()
        for row in subjects(ctx, 0):
            compared += 1
            found += len(neighbours(ctx, cfg, Mem(*row)))
    store.close()
    return {"wall_s": t["s"], "compared": compared, "candidates": found}


# -- scoring --------------------------------------------------------------------------------------------


def score(data: dict, retired: list[list[int]]) -> dict:
    """Recall on the planted duplicates, false merges on the look-alikes, and the other retirements."""
    into = dict((a, b) for a, b in retired)

    def survivor(i: int) -> int:
        seen = set()
        while i in into and i not in seen:
            seen.add(i)
            i = into[i]
        return i

    texts = {r[0]: r[1] for r in data["rows"]}
    keys = {r[0]: r[12] for r in data["rows"]}
    # A planted duplicate says what its original says: the original's words stand for both.
    keys.update({b: keys[a] for a, b, _ in data["duplicates"]})

    def shown(a: int, b: int) -> str:
        return f"#{a} {texts[a]!r} / #{b} {texts[b]!r}"

    dup = {kind: {"pairs": 0, "found": 0, "missed": []} for kind in DUPLICATE_KINDS}
    planted = set()
    for a, b, kind in data["duplicates"]:
        planted.add(frozenset((a, b)))
        dup[kind]["pairs"] += 1
        if survivor(a) == survivor(b):
            dup[kind]["found"] += 1
        else:
            dup[kind]["missed"].append(shown(a, b))
    look = {kind: {"pairs": 0, "merged": 0, "examples": []} for kind in LOOK_ALIKE_KINDS}
    look_pairs = set()
    for a, b, kind in data["look_alikes"]:
        look_pairs.add(frozenset((a, b)))
        look[kind]["pairs"] += 1
        if survivor(a) == survivor(b):
            look[kind]["merged"] += 1
            look[kind]["examples"].append(shown(a, b))
    other = {"same words by chance": [], "look-alike pair": [], "different memories": []}
    for a, b in retired:
        root = survivor(a)
        if frozenset((a, root)) in planted or frozenset((a, b)) in planted:
            continue
        if frozenset((a, root)) in look_pairs or frozenset((a, b)) in look_pairs:
            other["look-alike pair"].append(shown(b, a))
        elif keys[a] in (keys[b], keys[root]):  # an original written twice by chance, or its duplicate
            other["same words by chance"].append(shown(b, a))
        else:
            other["different memories"].append(shown(b, a))
    pairs = len(data["duplicates"])
    found = sum(d["found"] for d in dup.values())
    merged = sum(d["merged"] for d in look.values())
    for d in dup.values():
        d["missed_count"] = len(d["missed"])
        d["missed"] = d["missed"][:EXAMPLES]
    for d in look.values():
        d["examples"] = d["examples"][:EXAMPLES]
    return {"recall": found / pairs if pairs else float("nan"), "found": found, "pairs": pairs,
            "false_merges": merged, "look_alike_pairs": len(data["look_alikes"]), "duplicates": dup,
            "look_alikes": look, "other": {k: {"count": len(v), "examples": v[:EXAMPLES]} for k, v in other.items()},
            "retired": len(retired)}


# -- the bench ------------------------------------------------------------------------------------------


def run(args, workdir: Path, backend) -> Section:
    params = {**sizes(args.scale), "seed": args.seed}
    rows = params["rows"]
    sec = Section(f"dedupe on {backend.label}: {rows:,} long-term memories")
    built, figures = build(args, workdir, backend, params)
    log("dedupe: generating the planted pairs again (the same seed) to score the runs")
    data = dataset(**params)
    live = sum(1 for r in data["rows"] if r[11] is None)

    runs = {"job": [], "candidates": []}
    retired_first = None
    for rep in range(args.repeat):
        sequence = ("job", "candidates") if rep % 2 == 0 else ("candidates", "job")
        for who in sequence:
            log(f"dedupe: {who} (run {rep + 1}/{args.repeat})")
            copy = backend.copy(built, f"dedupe-{who}")
            try:
                res = common.run_contender(backend, copy, workdir, f"bench.dedupe:{who}")
            finally:
                backend.remove(copy)
            if who == "job":
                if res["status"] != "success":
                    raise RuntimeError(f"dedupe ended {res['status']}: {res['error']}")
                retired = res.pop("retired")
                if retired_first is None:
                    retired_first = retired
                elif retired != retired_first:
                    raise RuntimeError(f"the dedupe job retired different memories on repeat {rep + 1}")
                log(f"dedupe: job {res['wall_s']:.2f} s: {res['result']}")
            else:
                log(f"dedupe: candidate query {res['wall_s']:.2f} s, {res['compared']:,} memories,"
                    f" {res['candidates']:,} candidates")
            runs[who].append(res)

    found = score(data, retired_first)
    t_job = median([r["wall_s"] for r in runs["job"]])
    t_cand = median([r["wall_s"] for r in runs["candidates"]])
    ratio = t_job / t_cand
    j0, c0 = runs["job"][0], runs["candidates"][0]
    rep = f" (median of {args.repeat})" if args.repeat > 1 else ""
    sec.line(f"  data: scale {args.scale:g} = {rows:,} long-term memories (scale 1 = {ROWS:,}) of"
             f" {params['senders']:,} senders, seed {args.seed}, created over the last year, ids in time order"
             " (--order does not apply)")
    sec.line(f"  planted: {params['duplicates']:,} near-duplicates ({DUPLICATE_SHARE:.0%} of the rows, one"
             f" rewording each: {', '.join(DUPLICATE_KINDS)}), {params['look_alikes']:,} look-alike pairs"
             f" ({', '.join(LOOK_ALIKE_KINDS)}); {live:,} memories live, {rows - live:,} soft-deleted")
    if figures is not None:
        how = ("executemany, synchronous=off, content_key set; then Store.sync_search indexed them in"
               f" {figures['sync_s']:.1f} s" if backend.name == "sqlite" else
               "COPY, content_key set, the GIN index kept by the server; then VACUUM (FREEZE, ANALYZE)")
        sec.line(f"  build: {figures['wall_s']:.1f} s ({how}), {figures['mb']:,.0f} MiB")
    else:
        sec.line("  build: reused from an earlier run in this work directory (its build time is in that report)")
    sec.line()
    sec.table(
        ["contender", "seconds", "compared", "candidates", "merged", "superseded", "MB written", "peak RSS MB"],
        [
            [f"dedupe job, first run (full pass){rep}", t_job, j0["result"].get("compared"), None,
             j0["result"].get("merged"), j0["result"].get("superseded"), f"{j0['written_mb']:.1f}",
             f"{j0['rss_peak_mb']:.1f}"],
            [f"full-text candidate query alone{rep}", t_cand, c0["compared"], c0["candidates"], None, None,
             f"{c0['written_mb']:.1f}", f"{c0['rss_peak_mb']:.1f}"],
        ],
    )
    sec.line("  (seconds: Engine.run_job, and sync_search + neighbours() for every live memory; each in a fresh"
             " process on a fresh copy, Store.open not counted)")
    sec.line(common.WRITTEN_NOTE[backend.name])
    sec.line(f"  job time (run record duration_ms): {median([r['job_ms'] for r in runs['job']]) / 1000:.3f} s;"
             f" pass {j0['result'].get('pass')!r}")
    if args.repeat > 1:
        sec.line("  all runs (s): job " + ", ".join(f"{r['wall_s']:.2f}" for r in runs["job"])
                 + "; candidate query " + ", ".join(f"{r['wall_s']:.2f}" for r in runs["candidates"]))
    sec.line()
    sec.table(["planted near-duplicates", "pairs", "merged", "recall"],
              [[kind, d["pairs"], d["found"], f"{d['found'] / d['pairs']:.2%}" if d["pairs"] else "-"]
               for kind, d in found["duplicates"].items()]
              + [["all", found["pairs"], found["found"], f"{found['recall']:.2%}"]])
    sec.line()
    sec.table(["planted look-alike pairs", "pairs", "falsely merged"],
              [[kind, d["pairs"], d["merged"]] for kind, d in found["look_alikes"].items()]
              + [["all", found["look_alike_pairs"], found["false_merges"]]])
    sec.line()
    other = found["other"]
    sec.line(f"  memories retired: {found['retired']:,}; besides the planted near-duplicates: "
             + ", ".join(f"{v['count']:,} {k}" for k, v in other.items()))
    for kind, d in found["duplicates"].items():
        for example in d["missed"]:
            sec.line(f"  missed ({kind}): {example}")
    for kind, d in found["look_alikes"].items():
        for example in d["examples"]:
            sec.line(f"  falsely merged ({kind}): {example}")
    for kind in ("different memories", "look-alike pair"):
        for example in other[kind]["examples"]:
            sec.line(f"  also retired, not planted ({kind}; survivor / retired): {example}")
    sec.check(f"recall on planted near-duplicates >= {TARGET_RECALL:.0%}", found["recall"] >= TARGET_RECALL,
              f"{found['recall']:.2%} ({found['found']:,} of {found['pairs']:,})")
    sec.check("no false merge of planted look-alikes", found["false_merges"] == 0,
              f"{found['false_merges']:,} of {found['look_alike_pairs']:,} pairs merged")
    sec.check(f"job / candidate query alone <= {TARGET_RATIO:g}x", ratio <= TARGET_RATIO,
              f"{ratio:.2f}x ({t_job:.2f} s vs {t_cand:.2f} s)")
    sec.data = {"sizes": params, "build": figures, "live": live, "job": runs["job"], "candidates": runs["candidates"],
                "ratio_job_candidates": ratio, "quality": found}
    return sec
