"""The small Korean corpus that ships inside taesan, so `taesan demo` needs no download.

Hand-written sentences (assets/ko_sentences.txt) plus template combinations, generated
deterministically. Not a benchmark corpus: real data lives in ../shared/data.
"""
from __future__ import annotations

import random
from importlib import resources

WHO = ["나는", "친구는", "우리는", "동생은", "언니는", "형은", "엄마는", "선생님은", "철수는", "영희는"]
WHEN = ["어제", "오늘", "주말에", "아침에", "저녁에", "지난주에", "방금", "오랜만에"]
WHERE = ["카페", "도서관", "공원", "학교", "시장", "영화관", "식당", "회사", "바다", "서점"]
WENT = ["갔었어", "갔었는데요", "갔었다", "갔다", "가요", "갔어요", "갔었지", "간다"]
THERE = ["거기 사람 많더라", "거기 조용하더라", "거기 사람이 없더라", "거기 커피가 맛있더라", "거기 정말 좋더라"]
DRIVE = [
    "난폭 운전은 위험하다", "난폭 운전을 하면 안 된다", "난폭 운전 차량이 사고를 냈다", "난폭 운전 때문에 길이 막혔다",
    "난폭 운전을 신고했다", "안전 운전을 하자", "졸음 운전은 위험하다", "음주 운전은 범죄다",
]
SAVE = ["티끌 모아 태산", "티끌 모아 태산이다", "티끌 모아 태산이라더니 정말이다", "매일 조금씩 모으면 티끌 모아 태산이 된다"]
GOOD = ["정말 재미있었다", "최고의 영화다", "배우들 연기가 훌륭하다", "감동적이었다", "또 보고 싶다", "음악이 너무 좋았다",
        "완벽한 결말이었다", "시간 가는 줄 몰랐다", "웃음이 끊이지 않았다", "연출이 뛰어나다", "꼭 보세요", "인생 영화다"]
BAD = ["정말 지루했다", "돈이 아깝다", "시간 낭비였다", "스토리가 엉망이다", "다시는 안 본다", "연기가 어색했다",
       "너무 실망했다", "결말이 최악이다", "잠이 쏟아졌다", "연출이 아쉽다", "보지 마세요", "볼 가치가 없다"]
MOVIE = ["이 영화", "그 영화", "어제 본 영화", "이번 작품", "이 드라마", "그 애니메이션"]
# past-tense stems with the things they take, times endings: 먹었어 / 먹었는데요 / 먹었습니다 ... share pieces that a
# word vocabulary cannot (an unseen ending is a whole unknown word) and subword vocabularies can
DID = {
    "먹었": ["빵", "라면", "케이크", "김밥", "떡볶이"], "마셨": ["커피", "우유", "녹차", "주스"],
    "읽었": ["책", "신문", "소설", "만화책"], "봤었": ["영화", "드라마", "전시", "공연"],
    "샀었": ["옷", "신발", "가방", "우산"], "만났었": ["친구", "선생님", "동생", "사촌"],
}
ENDINGS = ["어", "는데요", "다", "지", "어요", "는데", "습니다", "거든", "잖아", "더니"]


def asset_lines(name: str) -> list[str]:
    """The non-empty lines of a text file shipped in taesan/assets (ko_sentences.txt, ko_paragraphs.txt)."""
    text = resources.files("taesan").joinpath(f"assets/{name}").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def hand_written() -> list[str]:
    return asset_lines("ko_sentences.txt")


def has_final_consonant(word: str) -> bool:
    """Whether the last Hangul syllable of `word` ends in a consonant (받침), which picks a particle's form: 책 -> True."""
    return (ord(word[-1]) - 0xAC00) % 28 != 0


def object_particle(noun: str) -> str:
    """을 after a final consonant, 를 after a vowel: object_particle("책") -> "책을", object_particle("커피") -> "커피를"."""
    return noun + ("을" if has_final_consonant(noun) else "를")


def did_something(rng: random.Random) -> str:
    """A template sentence with an inflected past-tense verb: "주말에 카페에서 커피를 마셨는데요"."""
    stem = rng.choice(list(DID))
    return f"{rng.choice(WHEN)} {rng.choice(WHERE)}에서 {object_particle(rng.choice(DID[stem]))} {stem}{rng.choice(ENDINGS)}"


def korean_corpus(n_lines: int = 4000, seed: int = 0) -> list[str]:
    """Hand-written sentences plus `n_lines` template sentences (daily life, driving, saving, reviews, verb endings)."""
    rng = random.Random(seed)
    lines = hand_written()
    makers = [
        lambda: f"{rng.choice(WHEN)} {rng.choice(WHERE)} {rng.choice(WENT)}",
        lambda: f"{rng.choice(WHO)} {rng.choice(WHEN)} {rng.choice(WHERE)}에 {rng.choice(WENT)}",
        lambda: f"{rng.choice(WHEN)} {rng.choice(WHERE)} {rng.choice(WENT)} {rng.choice(THERE)}",
        lambda: rng.choice(DRIVE),
        lambda: rng.choice(SAVE),
        lambda: review(rng, GOOD, rng.choice((1, 2, 2, 3))),
        lambda: review(rng, BAD, rng.choice((1, 2, 2, 3))),
        lambda: did_something(rng),
    ]
    lines += [rng.choice(makers)() for _ in range(n_lines)]
    return lines


def review(rng: random.Random, phrases: list[str], k: int) -> str:
    """A movie review of k distinct phrases of one sentiment ("이 영화 연출이 뛰어나다 꼭 보세요"): real reviews repeat
    their sentiment, and that is what lets unlabelled text teach which phrases go together (the demo's pretrained
    vs from scratch step). One phrase per review, each with a twin of the other sentiment in the same slot, would
    teach only that 재미있었다 and 지루했다 fill the same slot."""
    return " ".join([rng.choice(MOVIE), *rng.sample(phrases, k)])


def sentiment_examples(n: int = 600, seed: int = 0) -> list[tuple[str, int]]:
    """Labelled movie-review-like sentences: 1 = positive, 0 = negative (balanced)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        extra = rng.choice(["", " 진짜", " 정말로", " ㅋㅋ", " 하하", "..."])
        out.append((f"{review(rng, GOOD if label else BAD, rng.choice((1, 2)))}{extra}".strip(), label))
    rng.shuffle(out)
    return out
