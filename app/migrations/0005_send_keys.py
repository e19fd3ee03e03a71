from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_export_jobs')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SendKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='send_keys', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(max_length=200)),
                ('state', fields.CharField(description='sending, sent or unknown', max_length=16)),
                ('message_id_header', fields.TextField(unique=False)),
                ('provider_message_id', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'send_keys', 'app': 'models', 'unique_together': (('account', 'key'),), 'pk_attr': 'id', 'table_description': 'An idempotency key of a send from one account, with its outcome: a retried send with'},
            bases=['Model'],
        ),
    ]
