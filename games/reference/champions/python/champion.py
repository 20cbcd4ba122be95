"""Sample Python champion: the second-richest cell (the C sample takes the richest)."""


def play_turn(turn, cells, my_score, their_score):
    order = sorted(range(len(cells)), key=lambda i: -cells[i])
    return order[1] if len(order) > 1 else order[0]
