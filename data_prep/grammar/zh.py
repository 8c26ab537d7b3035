"""Mandarin sentences (simplified characters) from a fixed character inventory.

The grammar fills topic-comment frames (subject, time, place, verb-object, measure words,
吗/什么/哪里 questions, 因为…所以…) from a hand-written lexicon. A `ZhGrammar` only keeps
lexicon entries written entirely with inventory characters and rejects any sentence that
still strays outside it, so the zh-CN head's output alphabet is exactly the inventory.
"""

from __future__ import annotations

from .base import chance, count, pick, table, words

SUBJECTS = words("""
我;你;他;她;我们;你们;他们;老师;学生;朋友;妈妈;爸爸;孩子;医生;哥哥;姐姐;弟弟;妹妹;同学;
大家;我的朋友;这个孩子;我们老师;小王;小李;他的妈妈;我的同学
""")
TIMES = words("今天;明天;现在;晚上;早上;下午;每天;周末;上午;今年;明年;中午;一会儿")
PAST_TIMES = words("昨天;去年;上个月;刚才;前天;昨天晚上;上个星期")
PLACES = words("家;学校;公司;中国;北京;上海;这里;那里;外面;商店;医院;公园;图书馆;饭店;银行;车站;朋友家")
VERB_OBJECTS = words("""
吃饭;看书;喝水;喝茶;买东西;写字;学习中文;工作;上课;看电视;打电话;听音乐;做饭;睡觉;开车;
唱歌;跳舞;说话;玩游戏;买衣服;找工作;看电影;写信;休息;上网;学习;打球;跑步;洗衣服;说中文;
做作业;等朋友;回家;坐车;看报纸;喝咖啡
""")
WHAT_VERBS = words("吃;喝;买;看;做;学;写;说;找;听")
PERSON_PREDICATES = words("""
很高兴;很忙;很累;很漂亮;很快;有点累;不太好;非常好;特别忙;真不错;很热;很冷;很开心;很好
""")
THING_PREDICATES = words("""
很大;很小;很好;很多;很有意思;很便宜;很贵;很干净;很远;很近;真不错;非常重要;太难了;很简单;很新
""")
# verb that fits, measure word, noun, "t" if it can lie on a table (and be bought)
COUNTED = table("""
买 本 书 t; 买 件 衣服 t; 吃 个 苹果 t; 喝 杯 茶 t; 喝 杯 水 t; 看 部 电影 -; 拍 张 照片 t;
买 台 电脑 t; 买 个 手机 t; 看 本 书 t; 问 个 问题 -; 认识 个 朋友 -; 养 只 猫 -;
养 只 狗 -; 写 个 故事 -; 去 个 地方 -; 去 个 城市 -; 买 辆 车 -; 做 件 事情 -;
买 张 桌子 -; 去 个 国家 -; 找 个 房间 -; 买 个 包 t; 买 支 笔 t; 喝 杯 咖啡 t
""", 4)
MODALS = words("要;想;会;可以;应该;喜欢;打算;准备;能")
THINK = words("说;觉得;知道;希望;认为;听说")
_DIGITS = "零一二三四五六七八九"


def number_words(n: int, before_measure: bool = False) -> str:
    """0-99 in characters; 2 before a measure word is 两 (两个, not 二个)."""
    if n == 2 and before_measure:
        return "两"
    if n < 10:
        return _DIGITS[n]
    tens, units = divmod(n, 10)
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[units] if units else "")


class ZhGrammar:
    """The lexicon restricted to an inventory of characters."""

    def __init__(self, inventory: str | set[str]):
        self.inventory = frozenset(inventory)
        keep = self.fits
        self.subjects = [w for w in SUBJECTS if keep(w)]
        self.times = [w for w in TIMES if keep(w)]
        self.past_times = [w for w in PAST_TIMES if keep(w)]
        self.places = [w for w in PLACES if keep(w)]
        self.verb_objects = [w for w in VERB_OBJECTS if keep(w)]
        self.what_verbs = [w for w in WHAT_VERBS if keep(w)]
        self.person_predicates = [w for w in PERSON_PREDICATES if keep(w)]
        self.thing_predicates = [w for w in THING_PREDICATES if keep(w)]
        self.counted = [row for row in COUNTED if keep("".join(row))]
        self.on_table = [row for row in self.counted if row[3] == "t"]
        self.modals = [w for w in MODALS if keep(w)]
        self.think = [w for w in THINK if keep(w)]
        # too small an inventory leaves no subject or verb: callers fall back to word strings
        self.usable = bool(self.subjects and self.verb_objects)

    def fits(self, text: str) -> bool:
        """True when every Chinese character of `text` is in the inventory."""
        return all(ch in self.inventory for ch in text if "\u3400" <= ch <= "\u9fff")

    def sentence(self, rng, max_tries: int = 200) -> str:
        for _ in range(max_tries):
            text = self._sentence(rng)
            if text and self.fits(text):
                return text
        raise RuntimeError("no zh-CN sentence fits the character inventory; enlarge it")

    def _opt(self, rng, items: list[str], p: float = 0.5) -> str:
        return pick(rng, items) if items and chance(rng, p) else ""

    def _clause(self, rng) -> str:
        return (pick(rng, self.subjects) + self._opt(rng, self.times) +
                ("在" + pick(rng, self.places) if self.places and chance(rng, 0.4) else "") +
                pick(rng, self.verb_objects))

    def _sentence(self, rng) -> str:
        s, vo = pick(rng, self.subjects), pick(rng, self.verb_objects)
        frame = int(rng.integers(9))
        if frame == 0:
            return self._clause(rng) + "。"
        if frame == 1 and self.modals and self.places:
            return (self._opt(rng, self.times) + s + pick(rng, self.modals) + "去" +
                    pick(rng, self.places) + self._opt(rng, self.verb_objects) + "。")
        if frame == 2 and self.past_times:
            if self.counted and chance(rng, 0.5):
                verb, m, noun, _ = pick(rng, self.counted)
                return (s + pick(rng, self.past_times) + verb + "了" +
                        number_words(count(rng, 2, 12), True) + m + noun + "。")
            return s + pick(rng, self.past_times) + vo + "了。"
        if frame == 3 and self.person_predicates:
            predicates = self.person_predicates
            if self.counted and self.thing_predicates and chance(rng, 0.4):
                _, m, noun, _ = pick(rng, self.counted)
                s, predicates = pick(rng, ("这", "那")) + m + noun, self.thing_predicates
            return s + self._opt(rng, self.times, 0.3) + pick(rng, predicates) + \
                pick(rng, ("。", "！", "。"))
        if frame == 4:
            return s + self._opt(rng, self.times) + self._opt(rng, self.modals) + vo + "吗？"
        if frame == 5:
            choice = int(rng.integers(5))
            if choice == 0:
                return s + "在哪里？"
            if choice == 1 and self.what_verbs:
                return s + self._opt(rng, self.times) + "想" + pick(rng, self.what_verbs) + "什么？"
            if choice == 2:
                return s + "为什么不" + vo + "？"
            if choice == 3 and self.places:
                return s + "什么时候去" + pick(rng, self.places) + "？"
            if self.on_table:
                _, m, noun, _ = pick(rng, self.on_table)
                return "这" + m + noun + "多少钱？"
            return ""
        if frame == 6 and self.on_table:
            verb, m, noun, _ = pick(rng, self.on_table)
            n = count(rng)
            choice = int(rng.integers(4))
            if choice == 0:
                return s + "想" + verb + number_words(n, True) + m + noun + "。"
            if choice == 1:
                return "桌子上有" + number_words(n, True) + m + noun + "。"
            if choice == 2:
                return "这" + m + noun + number_words(n) + "块钱。"
            return "现在" + number_words(int(rng.integers(2, 13)), True) + "点了。"
        if frame == 7:
            choice = int(rng.integers(4))
            if choice == 0:
                return "因为" + self._clause(rng) + "，所以" + self._clause(rng) + "。"
            if choice == 1:
                return self._clause(rng) + "，但是" + self._clause(rng) + "。"
            if choice == 2 and self.think:
                return s + pick(rng, self.think) + self._clause(rng) + "。"
            return s + "说：“" + self._clause(rng) + "。”"
        if frame == 8:
            if self.places and chance(rng, 0.4):
                return "我们一起去" + pick(rng, self.places) + "吧！"
            return "请" + pick(rng, ("", "你", "大家")) + self._opt(rng, self.times) + vo + \
                pick(rng, ("。", "！"))
        return self._clause(rng) + "。"
