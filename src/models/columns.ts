import { DataTypes, type Model, type ModelStatic } from 'sequelize';

/**
 * Column helpers shared by the model files. Functions, not shared objects: Sequelize writes into each
 * attribute definition it is given. BIGINT columns come back from pg as strings: convert them with
 * src/lib/money.ts, never with Number() or parseFloat().
 */
export const bigint = () => ({ type: DataTypes.BIGINT, allowNull: false });
export const nullableBigint = () => ({ type: DataTypes.BIGINT, allowNull: true });
export const integer = () => ({ type: DataTypes.INTEGER, allowNull: false });
export const smallint = () => ({ type: DataTypes.SMALLINT, allowNull: false });
export const text = () => ({ type: DataTypes.TEXT, allowNull: false });
export const nullableText = () => ({ type: DataTypes.TEXT, allowNull: true });
export const timestamp = () => ({ type: DataTypes.DATE, allowNull: false });
export const nullableTimestamp = () => ({ type: DataTypes.DATE, allowNull: true });
export const day = () => ({ type: DataTypes.DATEONLY, allowNull: false });
/** Sums across users and days (rollups): NUMERIC, so no sequence of valid requests can overflow them. */
export const numeric = () => ({ type: DataTypes.DECIMAL, allowNull: false });
export const boolean = () => ({ type: DataTypes.BOOLEAN, allowNull: false });
export const nullableInteger = () => ({ type: DataTypes.INTEGER, allowNull: true });

/** Tables are snake_case with no Sequelize-managed timestamps: the database sets created_at itself. */
export const tableOptions = { underscored: true, timestamps: false } as const;

/** A model instance typed by its attributes (the Sequelize `define` form: one model per Sequelize instance). */
export type Row<T extends object> = Model<T, Partial<T>> & T;
export type RowModel<T extends object> = ModelStatic<Row<T>>;
