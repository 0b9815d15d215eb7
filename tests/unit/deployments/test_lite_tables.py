"""Tables for engines without a table model: words on the table's grid as OTSL (ruled tables by
their lines, unruled ones by the gaps between words), and the ruled/unruled test that decides
whether a page-sized table box is a table at all."""

import numpy as np

from deployments.recognizer.lite_tables import is_ruled, table_otsl
from deployments.recognizer.otsl import otsl_to_html


def grid_image(rows: int, cols: int, cell=(40, 100), ruled=True) -> np.ndarray:
    h, w = rows * cell[0] + 10, cols * cell[1] + 10
    image = np.full((h, w, 3), 255, np.uint8)
    if ruled:
        for r in range(rows + 1):
            image[5 + r * cell[0]: 7 + r * cell[0], 5:w - 5] = 0
        for c in range(cols + 1):
            image[5:h - 5, 5 + c * cell[1]: 7 + c * cell[1]] = 0
    return image


def words_in_cells(rows: int, cols: int, cell=(40, 100)):
    boxes, texts = [], []
    for r in range(rows):
        for c in range(cols):
            x, y = 15 + c * cell[1], 15 + r * cell[0]
            boxes.append((x, y, x + 50, y + 15))
            texts.append(f"r{r}c{c}")
    return np.array(boxes, float), texts


def test_a_ruled_table_is_read_by_its_lines():
    image = grid_image(3, 4)
    boxes, texts = words_in_cells(3, 4)
    otsl = table_otsl(image, boxes, texts)
    assert otsl == "".join("".join(f"<fcel>r{r}c{c}" for c in range(4)) + "<nl>" for r in range(3))
    assert otsl_to_html(otsl).startswith("<table><tr><td>r0c0</td><td>r0c1</td>")
    assert is_ruled(image)


def test_an_empty_cell_stays_a_cell_and_two_words_share_theirs():
    image = grid_image(2, 3)
    boxes, texts = words_in_cells(2, 3)
    keep = [i for i in range(6) if i != 4]  # r1c1 empty
    boxes, texts = boxes[keep], [texts[i] for i in keep]
    boxes = np.vstack([boxes, [[70, 15, 95, 30]]])  # a second word in r0c0, right of the first
    texts.append("more")
    otsl = table_otsl(image, boxes, texts)
    assert otsl == "<fcel>r0c0 more<fcel>r0c1<fcel>r0c2<nl><fcel>r1c0<ecel><fcel>r1c2<nl>"


def test_an_unruled_table_is_read_by_the_gaps_between_words():
    image = grid_image(3, 3, ruled=False)
    boxes, texts = words_in_cells(3, 3)
    assert not is_ruled(image)
    assert table_otsl(image, boxes, texts) == "".join(
        "".join(f"<fcel>r{r}c{c}" for c in range(3)) + "<nl>" for r in range(3))


def test_no_words_no_table():
    assert table_otsl(grid_image(2, 2), np.zeros((0, 4)), []) == ""
