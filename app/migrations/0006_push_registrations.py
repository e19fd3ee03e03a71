from tortoise import migrations
from tortoise.migrations import operations as ops
from app.types import Provider
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_send_keys')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PushRegistration',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.OneToOneField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='push_registration', on_delete=OnDelete.CASCADE)),
                ('provider', fields.CharEnumField(description='GMAIL: gmail\nGRAPH: graph\nIMAP: imap', enum_type=Provider, max_length=16)),
                ('external_id', fields.CharField(null=True, db_index=True, max_length=255)),
                ('client_state_digest', fields.CharField(null=True, max_length=64)),
                ('expires_at', fields.DatetimeField(null=True, description='when the provider ends it, null for never', auto_now=False, auto_now_add=False)),
                ('renew_after', fields.DatetimeField(description='when the worker registers or renews again', auto_now=False, auto_now_add=False)),
                ('last_error_code', fields.CharField(null=True, max_length=64)),
                ('rejected_notifications', fields.IntField(default=0, description='notifications with a wrong clientState, ignored')),
            ],
            options={'table': 'push_registrations', 'app': 'models', 'pk_attr': 'id', 'table_description': 'How push from the provider of an account stands: a Gmail ``users.watch`` or a Graph'},
            bases=['Model'],
        ),
    ]
