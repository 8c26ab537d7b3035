"""Spanish sentences: gender agreement, ser/estar chosen per adjective, pro-drop perfects,
inverted wh-questions wrapped in ¿ ?, numbers up to noventa y nueve."""

from __future__ import annotations

import numpy as np

from .base import Grammar, adjectives_for, chance, finish, join, keyed, pick, table, words

HUMANS = table("""
m niño niños; f niña niñas; m hombre hombres; f mujer mujeres; m vecino vecinos;
f vecina vecinas; m médico médicos; f médica médicas; m panadero panaderos;
m conductor conductores; f cantante cantantes; f enfermera enfermeras;
m cocinero cocineros; f abuela abuelas; m abuelo abuelos; m amigo amigos; f amiga amigas;
f hermana hermanas; m hermano hermanos; m estudiante estudiantes; m profesor profesores;
f profesora profesoras; m tío tíos; f tía tías; m cartero carteros; f directora directoras
""", 3)
ANIMALS = table("m perro perros; m gato gatos; m pájaro pájaros; m caballo caballos; m ratón ratones", 3)
THINGS = keyed("""
book m libro libros; letter f carta cartas; newspaper m periódico periódicos;
apple f manzana manzanas; bag m bolso bolsos; key f llave llaves; chair f silla sillas;
table f mesa mesas; lamp f lámpara lámparas; window f ventana ventanas; car m coche coches;
bicycle f bicicleta bicicletas; flower f flor flores; cake m pastel pasteles;
bread m pan panes; song f canción canciones; picture m cuadro cuadros;
story f historia historias; bill f factura facturas; map m mapa mapas; clock m reloj relojes;
bottle f botella botellas; glass m vaso vasos; door f puerta puertas;
computer m ordenador ordenadores; film f película películas; ball m balón balones;
hat m sombrero sombreros; suitcase f maleta maletas; notebook m cuaderno cuadernos;
jacket f chaqueta chaquetas; umbrella m paraguas paraguas; present m regalo regalos;
cup f taza tazas; plate m plato platos; parcel m paquete paquetes;
pen m bolígrafo bolígrafos; phone m teléfono teléfonos
""", 3)
# masculine, feminine, copula for "X is ADJ" (ser for what it is, estar for a state)
ADJECTIVES = keyed("""
big grande grande es; small pequeño pequeña es; old viejo vieja es; new nuevo nueva es;
beautiful bonito bonita es; red rojo roja es; blue azul azul es; green verde verde es;
loud ruidoso ruidosa es; quiet silencioso silenciosa es; tired cansado cansada está;
fast rápido rápida es; slow lento lenta es; cheap barato barata es; expensive caro cara es;
warm caliente caliente está; cold frío fría está; friendly amable amable es;
hungry hambriento hambrienta está; happy feliz feliz está; heavy pesado pesada es;
empty vacío vacía está; clean limpio limpia está; dirty sucio sucia está;
strange extraño extraña es; funny gracioso graciosa es; calm tranquilo tranquila está;
nice simpático simpática es; important importante importante es; broken roto rota está;
ready listo lista está; black negro negra es; white blanco blanca es;
pretty precioso preciosa es; young joven joven es; sad triste triste está
""", 3)
INTRANSITIVE = keyed("""
sleep duerme dormir; laugh ríe reír; sing canta cantar; wait espera esperar;
work trabaja trabajar; play juega jugar; run corre correr; swim nada nadar;
dance baila bailar; cry llora llorar; read lee leer; cook cocina cocinar; eat come comer;
paint pinta pintar; dream sueña soñar; study estudia estudiar; jump salta saltar
""", 2)
# 3rd singular, infinitive, participle, imperative (usted)
TRANSITIVE = keyed("""
read lee leer leído lea; look_for busca buscar buscado busque;
buy compra comprar comprado compre; find encuentra encontrar encontrado encuentre;
see ve ver visto mire; need necesita necesitar necesitado guarde; open abre abrir abierto abra;
bring trae traer traído traiga; sell vende vender vendido venda;
forget olvida olvidar olvidado olvide; repair repara reparar reparado repare;
wash lava lavar lavado lave; carry lleva llevar llevado lleve;
close cierra cerrar cerrado cierre; fetch recoge recoger recogido recoja;
take toma tomar tomado tome; hide esconde esconder escondido esconda;
order pide pedir pedido pida; lose pierde perder perdido pierda;
clean limpia limpiar limpiado limpie; pack empaqueta empaquetar empaquetado empaquete;
draw dibuja dibujar dibujado dibuje; eat come comer comido coma
""", 4)
PLACES = words("""
en el jardín; en la cocina; en el parque; en la estación; en la escuela; en el mercado;
en el bosque; en la ciudad; en la oficina; en la biblioteca; en el cine; en el aeropuerto;
en el restaurante; delante de la iglesia; en el pueblo; en la playa; en el hospital;
en la panadería; en el patio; en el museo; detrás de la casa; al lado de la escuela;
en el balcón; en el salón
""")
SURFACES = words("sobre la mesa; en la estantería; en la caja; en el suelo; en el armario")
DESTINATIONS = words("""
a la estación; a la escuela; al mercado; al bosque; a la ciudad; a la oficina;
a la biblioteca; al cine; al aeropuerto; a la playa; a casa; al médico; al parque;
al trabajo; a casa de mis abuelos
""")
TIMES = words("""
hoy; mañana; ahora; por la tarde; por la mañana; cada día; a menudo; a veces; esta noche;
el fin de semana; en verano; en invierno; después de cenar; todos los días; los domingos
""")
PAST_TIMES = words("ayer; la semana pasada; esta mañana; el lunes; anoche; hace una hora")
TAN_MANNERS = words("rápido; despacio; fuerte; temprano; tarde; bien; mal; alto")
DEGREES = words("muy; bastante; realmente; demasiado; todavía; un poco")
PERFECT_AUX = words("he; has; ha; hemos; habéis; han")
MODALS = words("""
quiero; queremos; puedes; debe; va a; podemos; tengo que; tenéis que; necesitamos; prefiero
""")
SAY = words("dice; piensa; cree; sabe; explica")  # verbs that keep the indicative


def noun_phrase(rng, noun, adj_kind: str = "", adj_p: float = 0.3, det: str = "") -> str:
    gender, singular, _ = noun
    adj = ""
    if chance(rng, adj_p):
        masc, fem, _ = pick(rng, adjectives_for(ADJECTIVES, adj_kind or "at"))
        adj = fem if gender == "f" else masc
    f = gender == "f"
    det = det or pick(rng, ("def", "def", "def", "un", "poss", "este"))
    article = {"def": "la" if f else "el", "un": "una" if f else "un",
               "este": "esta" if f else "este"}.get(det)
    if article is None:
        article = pick(rng, ("mi", "tu", "su", "nuestra" if f else "nuestro"))
    return join(article, singular, adj)


def _predicate(rng, gender: str, kind: str) -> str:
    masc, fem, copula = pick(rng, adjectives_for(ADJECTIVES, kind))
    neg = "no" if chance(rng, 0.15) else ""
    return join(neg, copula, pick(rng, DEGREES) if chance(rng, 0.5) and not neg else "",
                fem if gender == "f" else masc)


_UNITS = ("cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce "
          "quince dieciséis diecisiete dieciocho diecinueve veinte veintiuno veintidós "
          "veintitrés veinticuatro veinticinco veintiséis veintisiete veintiocho "
          "veintinueve").split()
_TENS = "_ _ _ treinta cuarenta cincuenta sesenta setenta ochenta noventa".split()


def number_words(n: int) -> str:
    """0-99: one word up to 29 ("veintitrés"), then "treinta y dos"."""
    if n < 30:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f" y {_UNITS[units]}" if units else "")


class Spanish(Grammar):
    def describe(self, rng: np.random.Generator) -> str:
        subject, noun, kind = self.described(rng)
        text = join(subject, _predicate(rng, noun[0], kind))
        return finish("¡" + text, "!") if chance(rng, 0.2) else finish(text)

    def request(self, rng: np.random.Generator) -> str:
        (*_, imperative), obj = self.transitive(rng)
        if chance(rng, 0.5):
            return finish("por favor, " + join(imperative, obj))
        return finish(join(imperative, obj) + ", por favor")


GRAMMAR = Spanish(
    humans=HUMANS, animals=ANIMALS, things=THINGS, intransitive_verbs=INTRANSITIVE,
    transitive_verbs=TRANSITIVE, places=PLACES, surfaces=SURFACES, destinations=DESTINATIONS,
    times=TIMES, past_times=PAST_TIMES, say=SAY, manners=TAN_MANNERS, modals=MODALS,
    noun_phrase=noun_phrase, number_words=number_words, perfect=PERFECT_AUX, go="ir",
    question_marks=("¿", "?"), perfect_questions=("has", "habéis", "ha"),
    wh_phrases=("dónde está {thing}", "por qué {verb} {subject} tan {manner}",
                "quién ha {participle} {obj}", "qué {verb} {subject} {time}",
                "cuándo va {subject} {destination}"),
    count_phrases=("hay {n} {things} {surface}", "todavía necesitamos {n} {things}",
                   "{thing} cuesta {n} euros", "el tren sale a las {hour}"),
    opinions=("creo", "pienso", "sé"), reported_phrase="{who} que {subject} {verb} {obj}",
    conjunctions=("pero", "y", "porque"), speech_verbs=("dice", "grita", "responde"),
    quote_marks=(": «", "»"),
)


def sentence(rng: np.random.Generator) -> str:
    """One Spanish sentence from a randomly chosen frame."""
    return GRAMMAR.sentence(rng)
