from tortoise import migrations
from tortoise.migrations import operations as ops
from app.types import Provider
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_search')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PendingAuthorization',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('state_digest', fields.CharField(unique=True, max_length=64)),
                ('owner', fields.ForeignKeyField('models.Owner', source_field='owner_id', db_constraint=True, to_field='id', related_name='pending_authorizations', on_delete=OnDelete.CASCADE)),
                ('token_id', fields.BigIntField(null=True, description='the API token that started it')),
                ('provider', fields.CharEnumField(description='GMAIL: gmail\nGRAPH: graph\nIMAP: imap', enum_type=Provider, max_length=16)),
                ('sealed_flow', fields.BinaryField()),
                ('return_url', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'oauth_states', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An OAuth consent an owner started and the provider has not answered yet (10 minutes).'},
            bases=['Model'],
        ),
        ops.AlterModelOptions(
            name='MessageBody',
            options={'table': 'message_bodies', 'app': 'models', 'pk_attr': 'message_id', 'table_description': 'Cached content of a message: bodies, headers and raw MIME (absent when not cached).'},
        ),
        ops.AlterModelOptions(
            name='SyncState',
            options={'table': 'sync_states', 'app': 'models', 'pk_attr': 'account_id', 'table_description': 'Where the sync of an account stands, its cursor, and the worker lease on it.'},
        ),
    ]
