"""VLMEvalKit-format benchmark TSVs and prediction tables of every benchmark type, made up here
(seeded), with the replies that exercise each scoring rule's edge cases.

`make_tables(out, n, seed)` writes, per benchmark, `NAME.tsv` (the benchmark, columns as
VLMEvalKit's own TSV of that name, base64 images) and `NAME_pred.xlsx` / `NAME_pred.tsv` (the
TSV's columns without `image`, plus `prediction`: what run.py writes) and returns
{name: (tsv, xlsx)}. Used by tests/eval/test_scores.py and benchmarks/vlmeval_agreement.py.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.eval._tsv import png_base64, write_tsv

YES_NO_REPLIES = ["Yes", "No", "yes.", "No.", "Yes, there is a dog.", "No, there is not.", "I am not sure.",
                  "Yes and no", "YES!", "There is no cat in the image.", "yes-no", "no;", "(Yes)", "Nope",
                  "The answer is yes", "no, yes", "Yes\nNo", "Absolutely yes, definitely.", ""]
MME_CATEGORIES = ("OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position",
                  "posters", "scene", "code_reasoning", "commonsense_reasoning", "numerical_calculation",
                  "text_translation")
OCR_CATEGORIES = ("Regular Text Recognition", "Irregular Text Recognition", "Artistic Text Recognition",
                  "Handwriting Recognition", "Digit String Recognition", "Non-Semantic Text Recognition",
                  "Scene Text-centric VQA", "Doc-oriented VQA", "Key Information Extraction",
                  "Handwritten Mathematical Expression Recognition")
WORDS = ["red", "blue", "cat", "the dog", "stop", "Total", "invoice", "2019", "12.5", "1,000", "3/4", "Paris",
         "Main St.", "x^2", "A", "an apple", "none", "two", "don't", "its"]
MMB_L2 = ["coarse_perception", "finegrained_perception (instance-level)", "finegrained_perception (cross-instance)",
          "logic_reasoning", "relation_reasoning", "attribute_reasoning"]


def _img(rng: random.Random) -> str:
    return png_base64(tuple(rng.randrange(256) for _ in range(3)), size=8)


def _mcq_reply(rng, options: dict, answer: str) -> str:
    letters = list(options)
    pick = rng.choice(letters)
    return rng.choice([
        answer, pick, f"({pick})", f"{pick}. {options[pick]}", options[pick], options[answer].upper(),
        f"The answer is {pick}.", f"{letters[0]} or {letters[-1]}", "Cannot determine the answer",
        f"I think it is {options[pick]} but maybe {options[letters[0]]}", "no idea", f"Answer: {answer}",
        f"option {pick}, because {options[answer]}", "Z", "a", f"{pick}\n"])


def _options(rng, k: int) -> dict:
    texts = rng.sample(["red", "green", "blue", "cat", "dog", "two", "three", "12", "left", "right", "big",
                        "small", "apple", "car"], k)
    return dict(zip("ABCDE", texts))


def mcq_tables(n: int, rng, circular: bool, name: str):
    columns = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split",
               "image"]
    rows = []
    for i in range(n):
        k = rng.choice([2, 3, 4, 4])
        opts = _options(rng, k)
        ans = rng.choice(list(opts))
        base = {"question": f"Question {i}: which one?", "hint": rng.choice(["", "Look closely."]),
                "category": rng.choice(["colour", "count", "scene"]), "l2-category": rng.choice(MMB_L2),
                "split": "dev", "image": _img(rng)}
        texts = list(opts.values())
        for r in range(len(texts) if circular else 1):
            rot = texts[r:] + texts[:r]
            o = dict(zip("ABCD", rot))
            a = "ABCD"[rot.index(opts[ans])]
            index = i + r * 1_000_000
            row = {**base, **o, "index": index, "answer": a}
            if r:
                row["image"] = str(i)  # MMBench: later copies point at the first one's image
            row["prediction"] = a if rng.random() < 0.55 else _mcq_reply(rng, o, a)
            rows.append(row)
    return columns, rows


def pope_tables(n, rng):
    columns = ["index", "question", "answer", "category", "image"]
    rows = []
    for i in range(n):
        rows.append({"index": i, "question": f"Is there a {rng.choice(WORDS)} in the image?",
                     "answer": rng.choice(["Yes", "No"]),
                     "category": rng.choice(["adversarial", "popular", "random", "popular,random"]),
                     "image": _img(rng), "prediction": rng.choice(YES_NO_REPLIES)})
    return columns, rows


def mme_tables(n, rng):
    columns = ["index", "image", "question", "answer", "category", "image_path"]
    rows = []
    per_cat = max(1, n // (2 * len(MME_CATEGORIES)))
    index = 0
    for cat in MME_CATEGORIES:
        for j in range(per_cat):
            img = _img(rng)
            for answer in ("Yes", "No"):
                rows.append({"index": index, "image": img, "question": f"Is this {cat} {j}? Please answer yes or no.",
                             "answer": answer, "category": cat, "image_path": f"{cat}/{j}.png",
                             "prediction": answer if rng.random() < 0.5 else rng.choice(YES_NO_REPLIES)})
                index += 1
    return columns, rows


def _near(rng, text: str) -> str:
    """A reply near `text`: exact, case, typos, padding, another answer."""
    choice = rng.randrange(8)
    if choice == 0:
        return text
    if choice == 1:
        return text.upper()
    if choice == 2 and text:
        k = rng.randrange(len(text))
        return text[:k] + rng.choice("xyz") + text[k + 1:]
    if choice == 3:
        return f"  {text} \n"
    if choice == 4:
        return f"The answer is {text}."
    if choice == 5 and len(text) > 3:
        return text[:-2]
    return rng.choice(WORDS)


def docvqa_tables(n, rng):
    columns = ["index", "image", "question", "answer"]
    rows = []
    for i in range(n):
        answers = rng.sample(WORDS, rng.choice([1, 1, 2, 3]))
        rows.append({"index": i, "image": _img(rng), "question": f"What is written at {i}?",
                     "answer": repr(answers), "prediction": _near(rng, rng.choice(answers))})
    return columns, rows


def _number_reply(rng, value: float) -> str:
    factor = rng.choice([1.0, 1.04, 0.96, 1.05, 1.051, 0.9, 1.2])
    got = value * factor
    return rng.choice([f"{got:g}", f"{got:.2f}", f"{got:g}%", str(int(got)), f" {got:g} "])


def chartqa_tables(n, rng):
    columns = ["index", "image", "question", "answer", "split"]
    rows = []
    for i in range(n):
        if rng.random() < 0.6:
            value = rng.choice([0, 1, 12, 33.3, 250, 0.05, 1000, 7.5])
            answer = rng.choice([f"{value:g}", f"{value:g}%"]) if value else "0"
            reply = _number_reply(rng, value) if rng.random() < 0.8 else rng.choice(["Yes", "none", "0"])
        else:
            answer = rng.choice(["Yes", "No", "Blue", "2019", "Asia"])
            reply = rng.choice([answer, answer.lower(), " " + answer, "Green", "2020"])
        rows.append({"index": i, "image": _img(rng), "question": f"What is the value {i}?", "answer": answer,
                     "split": rng.choice(["human", "augmented"]), "prediction": reply})
    return columns, rows


def ocrbench_tables(n, rng):
    columns = ["index", "image", "question", "answer", "category"]
    rows = []
    for i in range(n):
        cat = OCR_CATEGORIES[i % len(OCR_CATEGORIES)]
        if cat.startswith("Handwritten Math"):
            answers = [rng.choice(["x ^ { 2 } + 1", "\\frac { a } { b }", "a + b = c"])]
            reply = rng.choice([answers[0].replace(" ", ""), answers[0], "$" + answers[0] + "$", "x^3",
                                answers[0].upper()])
        else:
            answers = rng.sample(WORDS, rng.choice([1, 2]))
            reply = rng.choice([f"The text says {answers[0].upper()}.", answers[0], rng.choice(WORDS),
                                f"{answers[-1]}\nmore", ""])
        rows.append({"index": i, "image": _img(rng), "question": f"What text is shown ({i})?",
                     "answer": repr(answers), "category": cat, "prediction": reply})
    return columns, rows


def mmvet_tables(n, rng):
    columns = ["index", "image", "question", "answer", "category", "capability"]
    cats = ["rec", "ocr", "know", "gen", "spat", "math", "rec,ocr", "ocr,spat,math", "rec,know,gen"]
    rows = []
    for i in range(n):
        cat = cats[i % len(cats)]
        rows.append({"index": f"v{i}", "image": _img(rng), "question": f"What is shown in image {i}?",
                     "answer": rng.choice(["a cat", "-1 <AND> -5", "Paris<OR>paris", "12"]), "category": cat,
                     "capability": cat, "prediction": rng.choice(["a cat", "x = -1", "It is Paris.", "12", "dog"])})
    return columns, rows


def mathvista_tables(n, rng):
    columns = ["index", "image", "question", "answer", "question_type", "answer_type", "answer_option",
               "choices", "precision", "unit", "task", "skills"]
    rows = []
    for i in range(n):
        kind = rng.choice(["multi_choice", "integer", "float", "list"])
        task = rng.choice(["figure question answering", "math word problem", "geometry problem solving"])
        skills = repr(rng.sample(["algebraic reasoning", "arithmetic reasoning", "statistical reasoning"],
                                 rng.choice([1, 2])))
        if kind == "multi_choice":
            choices = rng.sample(["3/11", "8/11", "6/11", "3/5", "12"], 4)
            k = rng.randrange(4)
            row = {"answer": choices[k], "question_type": "multi_choice", "answer_type": "text",
                   "answer_option": "ABCD"[k], "choices": repr(choices), "precision": ""}
            pred = rng.choice([f"The answer is ({'ABCD'[k]}) {choices[k]}", "ABCD"[rng.randrange(4)],
                               f"I think {choices[(k + 1) % 4]}", "Let me think. The area is 12."])
        elif kind == "integer":
            value = rng.choice([0, 3, 14, 250])
            row = {"answer": str(value), "question_type": "free_form", "answer_type": "integer",
                   "answer_option": "", "choices": "", "precision": ""}
            pred = rng.choice([str(value), f"The answer is {value}.", str(value + 1), f"{value}.0"])
        elif kind == "float":
            value = rng.choice([1.45, 0.6, 2.0])
            row = {"answer": f"{value}", "question_type": "free_form", "answer_type": "float",
                   "answer_option": "", "choices": "", "precision": "2"}
            pred = rng.choice([f"{value}", f"It costs ${value}.", f"{value + 0.1:.2f}", "2"])
        else:
            row = {"answer": "[2007, 2008]", "question_type": "free_form", "answer_type": "list",
                   "answer_option": "", "choices": "", "precision": ""}
            pred = rng.choice(["[2007, 2008]", "between 2007 and 2008"])
        question = (f"Hint: Please answer the question and provide the final answer at the end.\n"
                    f"Question: What is asked in problem {i}?")
        if row["choices"]:
            question += "\nChoices:\n" + "\n".join(f"({'ABCD'[j]}) {c}" for j, c in
                                                  enumerate(eval(row["choices"])))  # noqa: S307 - our own repr
        rows.append({**row, "index": i, "image": _img(rng), "question": question, "unit": "", "task": task,
                     "skills": skills, "prediction": pred})
    return columns, rows


BUILDERS = {
    "MMBench_DEV_EN": lambda n, rng: mcq_tables(n, rng, True, "MMBench_DEV_EN"),
    "MMStar": lambda n, rng: mcq_tables(n, rng, False, "MMStar"),
    "AI2D_TEST": lambda n, rng: mcq_tables(n, rng, False, "AI2D_TEST"),
    "ScienceQA_TEST": lambda n, rng: mcq_tables(n, rng, False, "ScienceQA_TEST"),
    "RealWorldQA": lambda n, rng: mcq_tables(n, rng, False, "RealWorldQA"),
    "POPE": pope_tables,
    "MME": mme_tables,
    "DocVQA_VAL": docvqa_tables,
    "ChartQA_TEST": chartqa_tables,
    "OCRBench": ocrbench_tables,
    "MMVet": mmvet_tables,
    "MathVista_MINI": mathvista_tables,
}


def write_xlsx(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """The prediction table as run.py writes it (index as a number where it is one, text otherwise)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(columns)
    for r in rows:
        ws.append([r.get(c, "") if c != "index" or not isinstance(r.get(c), int) else r[c] for c in columns])
    wb.save(path)
    return path


def make_tables(out: Path, n: int = 60, seed: int = 0, names=None) -> dict[str, tuple[Path, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in names or BUILDERS:
        rng = random.Random(f"{seed}:{name}")
        columns, rows = BUILDERS[name](n, rng)
        tsv = write_tsv(out / f"{name}.tsv", columns, rows)
        pred_columns = [c for c in columns if c != "image"] + ["prediction"]
        xlsx = write_xlsx(out / f"{name}_pred.xlsx", pred_columns, rows)
        write_tsv(out / f"{name}_pred.tsv", pred_columns, rows)
        made[name] = (tsv, xlsx)
    return made
