#!/usr/bin/env python3
"""Trains huixi's offline emotion model: a character n-gram logistic regression (pos / neg / neu).

    python3 scripts/train_emotion.py            # writes lexicons/emotion/model.tsv
    python3 scripts/train_emotion.py --folds 5  # also prints 5-fold cross-validated accuracy

Input: every `lexicons/emotion/train_*.tsv` (`label<TAB>text`, label pos|neg|neu), sentences written and
labelled by hand for huixi (no public corpus; MIT OR Apache-2.0). Output: one line per feature with its
three class weights, embedded in the binary by `src/agents/offline/emotion_model.rs`, which extracts the
same features (keep `features()` here and there in step).

Deterministic: the standard library only, a fixed seed for the shuffles, so the same data gives the same
file byte for byte.
"""
import argparse
import glob
import math
import os
import random

CLASSES = ["pos", "neg", "neu"]
SEED = 20261201
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def normalize(text):
    """Full-width ASCII to half-width, ASCII lower case, every digit 0, white space folded."""
    out = []
    for c in text:
        o = ord(c)
        if 0xFF01 <= o <= 0xFF5E:
            c = chr(o - 0xFEE0)
        elif c == "\u3000":
            c = " "
        if c.isascii():
            if c.isdigit():
                c = "0"
            else:
                c = c.lower()
        if c.isspace():
            if out and out[-1] == " ":
                continue
            c = " "
        out.append(c)
    return "".join(out).strip()


def features(text):
    """Character 1- to 3-grams of the normalized text, with ^ and $ marking its ends; each counted once."""
    t = "^" + normalize(text) + "$"
    chars = list(t)
    feats = set()
    for n in (1, 2, 3):
        for i in range(len(chars) - n + 1):
            g = "".join(chars[i : i + n])
            if g.strip() == "" or g in ("^", "$"):
                continue
            feats.add(g)
    return sorted(feats)


def load():
    data = []
    for path in sorted(glob.glob(os.path.join(ROOT, "lexicons", "emotion", "train_*.tsv"))):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                label, sep, text = line.partition("\t")
                if not sep or label not in CLASSES or not text.strip():
                    raise SystemExit(f"{path}:{n}: expected pos|neg|neu<TAB>text")
                data.append((CLASSES.index(label), features(text)))
    return data


def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


def train(data, vocab, epochs, l2, rate):
    """Multinomial logistic regression by AdaGrad SGD with L2 on the weights (not on the biases)."""
    k = len(CLASSES)
    w = {f: [0.0] * k for f in vocab}
    g2 = {f: [1e-8] * k for f in vocab}
    b = [0.0] * k
    gb = [1e-8] * k
    order = list(range(len(data)))
    rng = random.Random(SEED)
    n = len(data)
    for _ in range(epochs):
        rng.shuffle(order)
        for i in order:
            y, feats = data[i]
            feats = [f for f in feats if f in w]
            z = list(b)
            for f in feats:
                wf = w[f]
                for c in range(k):
                    z[c] += wf[c]
            p = softmax(z)
            for c in range(k):
                err = p[c] - (1.0 if c == y else 0.0)
                gb[c] += err * err
                b[c] -= rate * err / math.sqrt(gb[c])
                for f in feats:
                    grad = err + l2 * w[f][c]
                    g2[f][c] += grad * grad
                    w[f][c] -= rate * grad / math.sqrt(g2[f][c])
    return w, b


def predict(w, b, feats):
    z = list(b)
    for f in feats:
        if f in w:
            for c in range(len(CLASSES)):
                z[c] += w[f][c]
    return softmax(z)


def vocabulary(data, min_count):
    counts = {}
    for _, feats in data:
        for f in feats:
            counts[f] = counts.get(f, 0) + 1
    return sorted(f for f, c in counts.items() if c >= min_count)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--min-weight", type=float, default=0.005, help="drop features weighing less in every class")
    ap.add_argument("--out", default=os.path.join(ROOT, "lexicons", "emotion", "model.tsv"))
    args = ap.parse_args()
    data = load()
    print(f"{len(data)} examples: " + ", ".join(f"{c} {sum(1 for y, _ in data if y == i)}" for i, c in enumerate(CLASSES)))
    if args.folds:
        rng = random.Random(SEED)
        idx = list(range(len(data)))
        rng.shuffle(idx)
        right = 0
        for k in range(args.folds):
            test = set(idx[k :: args.folds])
            tr = [data[i] for i in idx if i not in test]
            w, b = train(tr, vocabulary(tr, args.min_count), args.epochs, args.l2, args.rate)
            for i in test:
                p = predict(w, b, data[i][1])
                right += max(range(len(CLASSES)), key=lambda c: p[c]) == data[i][0]
        print(f"{args.folds}-fold accuracy {right / len(data):.3f}")
    w, b = train(data, vocabulary(data, args.min_count), args.epochs, args.l2, args.rate)
    rows = [(f, ws) for f, ws in w.items() if max(abs(v) for v in ws) >= args.min_weight]
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("# huixi offline emotion model: character 1-3-gram logistic regression, classes pos neg neu.\n")
        f.write("# Generated by scripts/train_emotion.py from lexicons/emotion/train_*.tsv; do not edit.\n")
        f.write("# Licence MIT OR Apache-2.0, like huixi. Lines: feature<TAB>w_pos<TAB>w_neg<TAB>w_neu.\n")
        f.write("\t".join(["<bias>"] + [f"{v:.4f}" for v in b]) + "\n")
        for feat, ws in rows:
            f.write("\t".join([feat] + [f"{v:.4f}" for v in ws]) + "\n")
    print(f"{len(rows)} features -> {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
