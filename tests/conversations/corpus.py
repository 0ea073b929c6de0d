"""A small knowledge base of a science tutor, and spoken questions as an offline speech
recogniser hears them (misheard words included)."""

SPIDERS = """# Spiders

Spiders are arachnids, not insects. Every spider has eight legs, while insects have six.
A spider's body has two main parts: the cephalothorax and the abdomen.

Most spiders spin silk from organs called spinnerets at the back of the abdomen. They use
the silk to build webs, to wrap their prey and to travel on the wind as spiderlings.

Spiders cannot chew their food. They inject venom and digestive juices into their prey
and then suck up the liquid.
"""

PLANTS = """# How plants grow

Plants need sunlight, water, air and nutrients from the soil to grow. Without light, a
plant becomes pale and weak.

Leaves make food for the plant by photosynthesis. Chlorophyll, the green pigment in the
leaves, captures the energy of sunlight. The plant takes in carbon dioxide from the air
and water from its roots, and turns them into sugar and oxygen.

Roots hold the plant in the ground and absorb water and minerals. The stem carries water
up to the leaves.
"""

SOLAR_SYSTEM = """The Solar System

The Sun is a star at the centre of the Solar System. Eight planets travel around it.
Mercury is the closest planet to the Sun, and Neptune is the farthest.

Jupiter is the largest planet. It is a gas giant, more than eleven times wider than the
Earth, and it has a giant storm called the Great Red Spot.

The Moon orbits the Earth once about every twenty-seven days. Its phases come from how
much of its sunlit side we can see.
"""

WATER_CYCLE = """The water cycle moves water between the oceans, the air and the land. The Sun heats
the water in oceans and lakes, and it evaporates into water vapour.

As the vapour rises it cools and condenses into tiny droplets that form clouds. When the
droplets join and grow heavy, they fall as rain, snow or hail. This is called
precipitation.

Rain water flows in rivers back to the sea, or soaks into the ground, and the cycle
starts again.
"""

VOLCANOES = """Volcanoes are openings in the Earth's crust. Hot melted rock called magma rises from
deep inside the Earth. When magma reaches the surface it is called lava.

Some volcanoes erupt explosively and throw ash high into the sky. Others let lava flow out
slowly. Mount Etna in Sicily is one of the most active volcanoes in the world.
"""

DOCUMENTS = {
    "Spiders": SPIDERS,
    "Plants": PLANTS,
    "Solar system": SOLAR_SYSTEM,
    "Water cycle": WATER_CYCLE,
    "Volcanoes": VOLCANOES,
}

# (question as heard, title of the document that answers it, a phrase of the passage)
ASR_QUESTIONS = [
    ("how many licks does the spider have", "Spiders", "eight legs"),
    ("what two plants need to grow", "Plants", "sunlight, water"),
    ("what do plance need to grow", "Plants", "sunlight, water"),
    ("how does photo synthesis work in the leafs", "Plants", "photosynthesis"),
    ("what is the biggest planet jupiter", "Solar system", "Jupiter is the largest"),
    ("which planet is closest to the son", "Solar system", "Mercury"),
    ("what makes the rain fall from clouds", "Water cycle", "precipitation"),
    ("what is lava", "Volcanoes", "lava"),
    ("how do spiders make they're webs", "Spiders", "silk"),
    ("what is evaporation", "Water cycle", "evaporates"),
]

UNRELATED_QUESTIONS = [
    "who won the football world cup",
    "what is your favourite colour",
    "can you help me with my french homework",
    "how do I multiply fractions",
]
