"""Multi-turn conversations, each written as a whole: "Speaker: text" lines ending with an
Inosuke line. "You" is the anonymous user; other names (Zenitsu, Tanjiro, Kanao, ...) speak for
themselves, as the bot labels people in a group chat."""

CONVERSATIONS: list[list[str]] = [
]
