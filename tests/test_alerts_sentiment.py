"""The shipped sentiment lexicon: quality on a small labelled bilingual set, and its rules.

Why these bars. A spike alert needs at least 5 negative messages that are also 30% of the
last 10 minutes' messages. In a normal chat a few percent of messages are complaints, so
what could raise a false alert is neutral or happy messages read as negative: with a false
positive rate of at most 10%, an ordinary stretch of chat stays far below 30% however busy
it is. Missing some negative messages only delays an alert, so recall may be lower: at
least 80% (a real storm of complaints still crosses both thresholds). Overall accuracy of
at least 85% per language keeps both in check. The set mixes messages written while the
lexicon was made with harder ones that were not tuned for (questions about problems,
sarcasm, idioms); the few the lexicon gets wrong are listed in `KNOWN_MISSES` so a change
that fixes or breaks one shows up.
"""

from __future__ import annotations

import time

import pytest

from handlers.alerts.sentiment import is_negative, lexicon, score, tokens

NEGATIVE_EN = [
    "This update is terrible, the app keeps crashing",
    "I want a refund, this is a scam",
    "Support never answers, so frustrating",
    "The new version is not good at all",
    "Worst experience I've had with any wallet",
    "I'm really disappointed with how this was handled",
    "Why is everything so slow today?? ugh",
    "This is ridiculous, I've been waiting 3 days",
    "lost all my tokens, you guys are thieves",
    "the site is down again, unbelievable",
    "I hate the new design",
    "can't log in, getting an error every time",
    "This project is dead, devs ran away",
    "stop spamming the group please",
    "I don't like this change",
    "not happy with the fees at all",
    "the bot is broken and nobody cares",
    "😡😡 fix this already",
    "this is so annoying",
    "awful customer service, never again",
    "bad news: the event was cancelled",
    "another outage, seriously?",
    "I feel cheated",
    "This sucks",
    "they banned me for no reason, unfair",
    "withdrawals are stuck for hours, what is going on",
    "the admins are ignoring us",
    "feels like a rug pull tbh",
    "Great, another bug. Just great.",  # sarcasm
    "I'm done with this group",
]
NEUTRAL_EN = [
    "Good morning everyone!",
    "Thanks for the quick help 🙏",
    "When is the next AMA?",
    "The update works great, love it",
    "Not bad at all, pretty smooth",
    "Can someone share the link to the docs?",
    "Welcome to the new members!",
    "I'm not sure, let me check",
    "No problem, happy to help",
    "See you at the meetup tomorrow",
    "lol that meme is great",
    "The price went up today",
    "Who won the giveaway?",
    "Congrats to the winners 🎉",
    "It was a bit slow yesterday but it's fine now",
    "Nothing wrong with my wallet",
    "I'm heading to bed, good night",
    "How do I reset my password?",
    "Great job team, the new feature is amazing",
    "Is the bridge working now?",
    "Don't forget to vote in the poll",
    "The market is quiet today",
    "Which exchange do you use?",
    "haha nice one",
    "We should organise a call next week",
    "Is this a known bug or just me?",
    "I lost my keys at the meetup lol, anyone found them?",
    "The devs fixed the login error, works fine now",
    "Can't wait for the launch!",
    "Sorry for the late reply",
]
NEGATIVE_ZH = [
    "这次更新太垃圾了，一直闪退",
    "客服根本不回消息，太失望了",
    "这就是个骗局，我要退款",
    "新版本很不好用",
    "又卡又慢，烦死了",
    "项目方跑路了吧",
    "我的币丢了，谁来管管",
    "这个规则太不公平了",
    "网站又挂了，无语",
    "真的很生气，等了三天都没人处理",
    "不满意，体验很差",
    "天天割韭菜，恶心",
    "别再发广告了，烦不烦",
    "登录一直报错，怎么回事",
    "手续费太贵了",
    "我不喜欢这个新界面",
    "管理员太不负责任了",
    "被骗了，大家小心",
    "这什么破软件",
    "感觉被坑了",
    "完全没用",
    "好烦啊，又掉线了",
    "心态崩了",
    "你们是在开玩笑吗？太离谱了",
    "一点都不靠谱",
    "提现一直卡着，到底怎么回事",
    "群里全是机器人刷屏",
    "这服务也太差劲了吧",
    "呵呵，又延期了",
    "再这样我就退群了",
]
NEUTRAL_ZH = [
    "大家早上好！",
    "谢谢管理员的帮助",
    "下次AMA是什么时候？",
    "新功能很好用，点赞",
    "还不错，挺流畅的",
    "有人能发一下文档链接吗",
    "欢迎新朋友加入",
    "不好意思，我刚才看错了",
    "没问题，随时帮忙",
    "明天线下见",
    "哈哈哈太好笑了",
    "今天价格涨了",
    "谁中奖了？",
    "恭喜中奖的朋友🎉",
    "昨天有点慢，今天已经好了",
    "我的钱包没有任何问题",
    "我去睡了，晚安",
    "怎么重置密码？",
    "团队辛苦了，新功能太棒了",
    "跨链桥现在能用吗？",
    "别忘了去投票",
    "今天行情很平静",
    "你们用哪个交易所？",
    "哈哈，有意思",
    "下周我们开个会吧",
    "这是已知的问题吗？",
    "好久不见，最近怎么样",
    "登录报错的问题修好了，谢谢",
    "期待下一次活动",
    "好像是网络的原因，我再试试",
]
# Messages the lexicon reads wrongly today (kept in the set, counted in the bars).
KNOWN_MISSES = {
    "Great, another bug. Just great.",
    "I'm done with this group",
    "Is this a known bug or just me?",
    "I lost my keys at the meetup lol, anyone found them?",
    "这是已知的问题吗？",
}


def _measure(negative: list[str], neutral: list[str]) -> tuple[float, float, float, set[str]]:
    wrong = {t for t in negative if not is_negative(t)} | {t for t in neutral if is_negative(t)}
    recall = 1 - len(wrong & set(negative)) / len(negative)
    false_positive = len(wrong & set(neutral)) / len(neutral)
    accuracy = 1 - len(wrong) / (len(negative) + len(neutral))
    return accuracy, recall, false_positive, wrong


@pytest.mark.parametrize(
    ("negative", "neutral"),
    [(NEGATIVE_EN, NEUTRAL_EN), (NEGATIVE_ZH, NEUTRAL_ZH)],
    ids=["en", "zh"],
)
def test_lexicon_quality_on_a_labelled_set(negative, neutral):
    accuracy, recall, false_positive, wrong = _measure(negative, neutral)
    assert false_positive <= 0.10, sorted(wrong & set(neutral))
    assert recall >= 0.80, sorted(wrong & set(negative))
    assert accuracy >= 0.85, sorted(wrong)
    # The misses are the known ones: a lexicon change that breaks another message fails here.
    assert wrong <= KNOWN_MISSES, sorted(wrong - KNOWN_MISSES)


def test_the_known_misses_are_still_misses():
    """If one of these is fixed, move it out of KNOWN_MISSES (the bar then gets stricter)."""
    everything = set(NEGATIVE_EN + NEGATIVE_ZH + NEUTRAL_EN + NEUTRAL_ZH)
    assert everything >= KNOWN_MISSES
    for text in KNOWN_MISSES:
        expected_negative = text in NEGATIVE_EN or text in NEGATIVE_ZH
        assert is_negative(text) is not expected_negative, text


@pytest.mark.parametrize(
    ("text", "sign"),
    [
        ("good", 1), ("not good", -1), ("not very good", -1), ("not bad", 1),
        ("no problem", 1), ("nothing wrong here", 1), ("never good", -1),
        ("好", 1), ("不好", -1), ("不太好", -1), ("不是很好", -1), ("不错", 1),
        ("没有问题", 1), ("一点都不好", -1), ("不好意思", 0), ("好像下雨了", 0),
        ("好烦", -1), ("太好了", 1), ("很好用", 1), ("不好用", -1),
    ],
)  # fmt: skip
def test_negation_and_compounds(text, sign):
    value = score(text)
    assert (value > 0) - (value < 0) == sign, (text, value, tokens(text))


def test_negation_stops_at_punctuation_and_after_three_words():
    assert score("not, good") > 0
    assert score("not at all good") < 0
    assert score("not really sure what happened but good") > 0


def test_intensifiers_contrast_and_stretched_words():
    assert score("very bad") < score("bad") < score("a bit bad") <= 0
    assert score("很差") < score("差") < 0
    assert score("sooo baaad") == score("so bad")
    assert score("slow but fine now") > 0
    assert score("有点慢，但是现在好了") > 0
    assert is_negative("SCAM!!!") and is_negative("ＳＣＡＭ") and is_negative("这是scam")


def test_links_and_emoji():
    assert score("see https://docs.example.org/faq") == 0  # ":/" in a link is no frown
    assert score(":(") < 0 < score(":)")
    assert score("❤️") > 0 and score("👎👎") < 0


def test_the_lexicon_is_a_few_hundred_words_per_language():
    lex = lexicon()
    han = [w for w in lex.words if any("\u4e00" <= ch <= "\u9fff" for ch in w)]
    latin = [w for w in lex.words if w.isascii() and w.isalpha()]
    assert len(han) >= 250 and len(latin) >= 250
    assert {"not", "never", "不", "没有"} <= lex.negators


def test_scoring_is_cheap():
    messages = (NEGATIVE_EN + NEUTRAL_EN + NEGATIVE_ZH + NEUTRAL_ZH) * 20
    started = time.perf_counter()
    for text in messages:
        is_negative(text)
    per_message = (time.perf_counter() - started) / len(messages)
    assert per_message < 500e-6  # typically 10-40 µs; generous for a busy shared machine
