from tortoise import migrations
from tortoise.migrations import operations as ops
from app.types import ExportStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_oauth_state')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ExportJob',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.Owner', source_field='owner_id', db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE)),
                ('archive_id', fields.CharField(unique=True, max_length=64)),
                ('status', fields.CharEnumField(default=ExportStatus.PENDING, description='PENDING: pending\nRUNNING: running\nREADY: ready\nFAILED: failed\nEXPIRED: expired', enum_type=ExportStatus, max_length=16)),
                ('account_ids', fields.JSONField(null=True, description='null: every account of the owner', encoder=JSON_DUMPS, decoder=loads)),
                ('messages_total', fields.IntField(default=0)),
                ('messages_done', fields.IntField(default=0)),
                ('size_bytes', fields.BigIntField(null=True)),
                ('error_code', fields.CharField(null=True, max_length=64)),
                ('lease_owner', fields.CharField(null=True, max_length=64)),
                ('lease_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'export_jobs', 'app': 'models', 'pk_attr': 'id', 'table_description': "An owner's data export: a zip in the data directory, named by a random ``archive_id``,"},
            bases=['Model'],
        ),
    ]
