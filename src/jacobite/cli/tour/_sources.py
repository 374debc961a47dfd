"""The five source texts the tour reproduces, and the docs page that explains each one.

A reader of the tour has jacobite, not the source texts, so every group of examples points to a
page of the documentation that states the problem, the text's numbers next to jacobite's, and
the derivation behind each disagreement.

>>> SOURCES["000"].page
'docs/worked-examples/000-softmax-classification.md'
>>> SOURCES["000"].url
'https://jacobite-dev.github.io/jacobite/worked-examples/000-softmax-classification/'
"""

from __future__ import annotations

from dataclasses import dataclass

SITE_URL = "https://jacobite-dev.github.io/jacobite/"  # mkdocs.yml's site_url


@dataclass(frozen=True)
class Source:
    ref: str  # "000"
    topic: str  # the page's title
    cites: str  # a short bibliographic description of the source text
    slug: str  # the page's file name without ".md"

    @property
    def page(self) -> str:
        """The page's path in the repository."""
        return f"docs/worked-examples/{self.slug}.md"

    @property
    def url(self) -> str:
        """The page on the documentation site."""
        return f"{SITE_URL}worked-examples/{self.slug}/"


SOURCES: dict[str, Source] = {s.ref: s for s in (
    Source("000", "Softmax in classification: mapping the output error back to the logits",
           "course notes 'Real-world applications of Jacobian Matrix', §3.1 (softmax in deep "
           "learning)", "000-softmax-classification"),
    Source("001", "The Jacobian's shape, backpropagation and the change of variables",
           "the tutorial 'A Gentle Introduction to the Jacobian' (Machine Learning Mastery, 2021)",
           "001-gentle-introduction"),
    Source("002", "The Jacobian of F(x, y) = (x² + y, xy), linear approximation and AD modes",
           "'Day 20: Jacobians: The Multidimensional Calculus of Machine Learning'",
           "002-jacobians-day-20"),
    Source("003", "From the Gaussian integral to Newton's method and a critical point",
           "Nguyen Vu Hung, 'From Gaussian Integral to Deep Learning: The Jacobian Matrix and "
           "Its Applications' (2025)", "003-gaussian-integral-to-deep-learning"),
    Source("004", "The softmax Jacobian: structure, eigenvalues, VJP and cross-entropy",
           "the lesson 'Jacobian of Softmax'", "004-softmax-jacobian"),
)}
