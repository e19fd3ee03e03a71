"""The root schema, assembled from the domain modules, with its limits and error handling.

``schema.graphql`` at the top of the repository is this schema exported
(``inbox-api schema``); a test fails when they differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from app.settings import Settings
from app.types import Action
from resolvers.accounts import AccountMutation, AccountQueries
from resolvers.compiled.executor import CompiledExecutor
from resolvers.compiled.names import CachedNameConverter
from resolvers.compiled.validation import TextValidationCache
from resolvers.connect import ConnectMutation
from resolvers.connect_imap import ConnectImapMutation
from resolvers.context import Context
from resolvers.drafts import DraftMutation
from resolvers.errors import CodedErrors
from resolvers.folders import FolderQueries
from resolvers.ids import encode_id
from resolvers.lookup import NodeQueries
from resolvers.message_actions import MessageActionMutation
from resolvers.messages import MessageQueries
from resolvers.owner import Owner, OwnerMutation, resolve_viewer
from resolvers.permissions import requires
from resolvers.privacy import PrivacyMutation, PrivacyQueries
from resolvers.send import SendMutation
from resolvers.subscriptions import Subscription
from resolvers.threads import ThreadQueries


@strawberry.type(description="What the calling token is allowed to do.")
class CurrentToken:
    scopes: list[Action]
    account_ids: list[strawberry.ID] | None = strawberry.field(
        description="Accounts the token may touch; null means all of the owner's accounts."
    )


@strawberry.type
class Query(
    AccountQueries, MessageQueries, ThreadQueries, FolderQueries, NodeQueries, PrivacyQueries
):
    @strawberry.field(
        extensions=requires(Action.OWNER), description="The owner of the calling token."
    )
    async def viewer(self, info: strawberry.Info[Context, None]) -> Owner:
        return await resolve_viewer(info)

    @strawberry.field(description="The calling token's own scopes (needs no scope).")
    def current_token(self, info: strawberry.Info[Context, None]) -> CurrentToken:
        principal = info.context.require_principal()
        return CurrentToken(
            scopes=sorted(principal.actions),
            account_ids=None
            if principal.account_ids is None
            else [strawberry.ID(encode_id("Account", a)) for a in sorted(principal.account_ids)],
        )


@strawberry.type
class Mutation(
    OwnerMutation,
    ConnectMutation,
    ConnectImapMutation,
    AccountMutation,
    PrivacyMutation,
    MessageActionMutation,
    SendMutation,
    DraftMutation,
):
    pass


class InboxSchema(strawberry.Schema):
    """A Strawberry schema whose error logging never prints messages or stack traces."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Classification and the safe log line happen in CodedErrors.
        return None


def build_schema(
    settings: Settings, *, extra_extensions: Sequence[Callable[[], SchemaExtension]] = ()
) -> strawberry.Schema:
    """The schema with its limits. Extensions are factories: each request gets fresh ones
    (the parser and validation caches are module-level, so they are shared)."""
    # The depth and alias rules are classes built once, here: Strawberry's limiter extensions
    # build new ones per instance, so every request missed the validation cache (its key holds
    # the rules) and paid for a class, which a subscription keeps for its whole life.
    limits = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        lambda: TextValidationCache(maxsize=512),
        lambda: AddValidationRules(limits),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        CodedErrors,
        *extra_extensions,
    ]
    return InboxSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True, name_converter=CachedNameConverter()),
        extensions=extensions,
        # Query operations run from compiled plans when they can (resolvers.compiled).
        execution_context_class=CompiledExecutor,
    )
